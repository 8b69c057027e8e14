package iam

import "slices"

// Sharing and linking, as HERE IAM has them. Sharing an app with an identity
// or a group gives it read, write, manage and share on that app — the
// manager's rights and share on top. Share on a resource is what linking it
// into a project needs: a project's manager decides what its project holds,
// the resource's home (or, outside projects, the realm) decides where the
// resource may go.

// ActionShare is the right to share what one holds: an app with others, a
// resource into other projects (linking).
const ActionShare = "share"

// SourceShare is the source kind of a sharee's rights on a shared app; its
// ID is "app/<id>".
const SourceShare = "share"

// shareeActions are what an app is shared with: what its managers may do,
// and share.
var shareeActions = append(slices.Clone(managerActions[ManagedApp]), ActionShare)

// Shares returns the identities and groups app is shared with, in order,
// and false when realm or the app does not exist.
func (s *State) Shares(realm, app string) ([]string, bool) {
	r := s.realms[realm]
	if r == nil {
		return nil, false
	}
	a, err := r.app("id", app)
	if err != nil {
		return nil, false
	}
	return a.AppState().Sharees.Sorted(), true
}

// shared offers a sharee's rights when the resource is an app shared with
// the subject, directly or through a group. Like any allow, an explicit
// deny beats it.
func (e *evaluation) shared(r *Realm, id *Identity, m ManagedRef) {
	if m.Kind != ManagedApp || !slices.Contains(shareeActions, e.action) {
		return
	}
	a, err := r.app("id", m.ID)
	if err != nil {
		return
	}
	src := Source{Kind: SourceShare, ID: string(m.Kind) + "/" + m.ID}
	sharees := a.AppState().Sharees
	if sharees.Has(id.ID) {
		e.allow.offer(src, 0)
	}
	for g := range id.Groups.All() {
		if sharees.Has(g) {
			src.Via = g
			e.allow.offer(src, 0)
		}
	}
}

// mayShareFrom reports whether actor holds share on a resource placed at
// pl, and if not, why: from its home project (that project's managers, or
// a member policy there granting share on it), or from the realm's own
// policies and roles for a resource without a home.
func (s *State) mayShareFrom(r *Realm, actor, hrn string, pl *ResourcePlacement) (bool, string) {
	if pl != nil && pl.Home != "" {
		if d := s.Check(CheckRequest{Realm: r.ID, Subject: actor, Action: ActionManageProject, Resource: ProjectHRN(r.ID, pl.Home)}); d.Allowed {
			return true, ""
		}
		d := s.Check(CheckRequest{Realm: r.ID, Subject: actor, Action: ActionShare, Resource: hrn, Scope: pl.Home})
		return d.Allowed, "neither a manager of its home project " + pl.Home + " nor allowed share there: " + d.Reason()
	}
	d := s.realmWide(r, actor, ActionShare, hrn)
	return d.Allowed, "it is in no home project and the realm's policies do not allow share on it: " + d.Reason()
}

// --- commands ------------------------------------------------------------------

// ShareApp shares an app with an identity or a group. Whoever manages the
// app (its managers, OrgAdmin, ResourceManager, and those it is shared
// with, since sharing gives manage) may share it. Errors: not_found (the
// app, the sharee); none and no event when it is already shared.
type ShareApp struct{ App, With string }

func (c ShareApp) permission(r *Realm) (string, string) { return ActionManageApp, AppHRN(r.ID, c.App) }
func (c ShareApp) validate() error                      { return validShare(c.App, c.With) }
func (c ShareApp) decide(s *State, r *Realm) ([]Event, error) {
	a, err := r.shareable(c.App, c.With)
	if err != nil || a.AppState().Sharees.Has(c.With) {
		return nil, err
	}
	return []Event{AppShared{InRealm{r.ID}, c.App, c.With}}, nil
}

// UnshareApp takes back what ShareApp gave. Errors: not_found (the app);
// none and no event when it was not shared.
type UnshareApp struct{ App, With string }

func (c UnshareApp) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c UnshareApp) validate() error { return validShare(c.App, c.With) }
func (c UnshareApp) decide(s *State, r *Realm) ([]Event, error) {
	a, err := r.app("id", c.App)
	if err != nil {
		return nil, err
	}
	if !a.AppState().Sharees.Has(c.With) {
		return nil, nil
	}
	return []Event{AppUnshared{InRealm{r.ID}, c.App, c.With}}, nil
}

func validShare(app, with string) error {
	if err := ValidID("id", app); err != nil {
		return err
	}
	return ValidID("identityOrGroupId", with)
}

// shareable returns the app to share with an identity or group of the realm.
func (r *Realm) shareable(app, with string) (*Identity, error) {
	a, err := r.app("id", app)
	if err != nil {
		return nil, err
	}
	if r.Groups[with] == nil {
		if _, err := r.identity("identityOrGroupId", with); err != nil {
			return nil, &Error{Code: ENotFound, Field: "identityOrGroupId", Message: "no identity or group " + with}
		}
	}
	return a, nil
}

// SetResourceLinkable lets a resource's home project allow or refuse links
// of it into other projects. Links made before stay: refusing new links is
// no reason to cut off the projects that rely on it, whose managers (or the
// home's) unlink it when wanted. Errors: not_found (the project, the
// resource in it), conflict (the project is not its home).
type SetResourceLinkable struct {
	Project  string
	HRN      string
	Linkable bool
}

func (c SetResourceLinkable) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c SetResourceLinkable) validate() error {
	_, err := ParseHRN("hrn", c.HRN)
	return err
}
func (c SetResourceLinkable) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	switch rel, ok := p.Resources[c.HRN]; {
	case !ok:
		return nil, &Error{Code: ENotFound, Field: "hrn", Message: c.HRN + " is not in project " + c.Project}
	case rel != RelationHome:
		return nil, &Error{Code: EConflict, Field: "hrn", Message: c.HRN + " is linked into project " + c.Project +
			", not at home there: only its home project " + r.Resources[c.HRN].Home + " says whether it may be linked"}
	}
	if r.Resources[c.HRN].NotLinkable == !c.Linkable {
		return nil, nil
	}
	return []Event{ResourceLinkableSet{InRealm{r.ID}, c.Project, c.HRN, c.Linkable}}, nil
}

// --- events --------------------------------------------------------------------

// AppShared shares an app with an identity or a group.
type AppShared struct {
	InRealm
	App  string `json:"app"`
	With string `json:"with"`
}

// AppUnshared takes back a share of an app.
type AppUnshared struct {
	InRealm
	App  string `json:"app"`
	With string `json:"with"`
}

// ResourceLinkableSet says whether a resource may be linked from its home
// project into others.
type ResourceLinkableSet struct {
	InRealm
	Project  string `json:"project"`
	HRN      string `json:"hrn"`
	Linkable bool   `json:"linkable"`
}

// EventType implements Event.
func (AppShared) EventType() string { return "AppShared" }

// EventType implements Event.
func (AppUnshared) EventType() string { return "AppUnshared" }

// EventType implements Event.
func (ResourceLinkableSet) EventType() string { return "ResourceLinkableSet" }

// --- apply ---------------------------------------------------------------------

func (e AppShared) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	r.ownIdentity(e.App).ownApp().Sharees.add(e.With)
	apps := r.sharedWith[e.With]
	apps.add(e.App)
	r.sharedWith[e.With] = apps
	touch(Change{Kind: ChangeAppShare, Realm: e.Realm, From: e.App, To: e.With})
}

func (e AppUnshared) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	if a := r.ownIdentity(e.App); a != nil {
		a.ownApp().Sharees.remove(e.With)
	}
	apps := r.sharedWith[e.With]
	apps.remove(e.App)
	if apps.Len() == 0 {
		delete(r.sharedWith, e.With)
	} else {
		r.sharedWith[e.With] = apps
	}
	touch(Change{Kind: ChangeAppShare, Realm: e.Realm, From: e.App, To: e.With})
}

func (e ResourceLinkableSet) apply(s *State, touch Touch) {
	s.realms[e.Realm].ownResource(e.HRN).NotLinkable = !e.Linkable
	touch(Change{Kind: ChangeResourceNotLinkable, Realm: e.Realm, From: e.Project, To: e.HRN})
}
