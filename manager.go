package iam

import (
	"maps"
	"sort"
	"strings"
)

// Ownership, as HERE IAM has it: the identity that creates an app, a group or
// a project becomes its first manager, and managers (identities, or groups
// whose members then manage) act on that one entity only. OrgAdmin and
// ResourceManager act on every one of the realm through their roles, which is
// how an orphaned entity (its last manager deleted) is taken over.

// ManagedKind names the kinds of entity that have managers.
type ManagedKind string

// Kinds of managed entity.
const (
	ManagedApp     ManagedKind = "app"
	ManagedGroup   ManagedKind = "group"
	ManagedProject ManagedKind = "project"
)

// ManagedRef names one managed entity.
type ManagedRef struct {
	Kind ManagedKind
	ID   string
}

// managerActions are what a manager may do on the HRN of what it manages:
// read and manage it, and for an app also set its status and delete it
// (manageUser on the app's HRN, as for any identity). Not share: HERE gives
// that only to those an app is shared with.
var managerActions = map[ManagedKind][]string{
	ManagedApp:     {ActionRead, ActionManageApp, ActionManageUser},
	ManagedGroup:   {ActionRead, ActionManageGroup},
	ManagedProject: {ActionRead, ActionManageProject},
}

// HRN returns the HRN of the managed entity in realm.
func (m ManagedRef) HRN(realm string) string {
	switch m.Kind {
	case ManagedApp:
		return AppHRN(realm, m.ID)
	case ManagedGroup:
		return GroupHRN(realm, m.ID)
	}
	return ProjectHRN(realm, m.ID)
}

// Managers returns the managers (identity and group ids, in order) of m in
// realm, and false when realm or m does not exist.
func (s *State) Managers(realm string, m ManagedRef) ([]string, bool) {
	r := s.realms[realm]
	if r == nil {
		return nil, false
	}
	ms, ok := r.managers(m)
	return ms.Sorted(), ok
}

// managers returns the manager set of m; false when m does not exist.
func (r *Realm) managers(m ManagedRef) (set, bool) {
	if ms := r.managerSet(m); ms != nil {
		return *ms, true
	}
	return set{}, false
}

// ownManagerSet is managerSet for apply to change: its entity owned
// (cow.go).
func (r *Realm) ownManagerSet(m ManagedRef) *set {
	switch m.Kind {
	case ManagedApp:
		if a := r.Identities.Get(m.ID); a != nil && a.Kind == KindApp && a.Status != StatusDeleted {
			return &r.ownIdentity(m.ID).ownApp().Managers
		}
	case ManagedGroup:
		if g := r.ownGroup(m.ID); g != nil {
			return &g.Managers
		}
	case ManagedProject:
		if p := r.ownProject(m.ID); p != nil {
			return &p.Managers
		}
	}
	return nil
}

// managerSet points at the field holding m's managers, for reading
// (apply uses ownManagerSet); nil when m does not exist.
func (r *Realm) managerSet(m ManagedRef) *set {
	switch m.Kind {
	case ManagedApp:
		if a := r.Identities.Get(m.ID); a != nil && a.Kind == KindApp && a.Status != StatusDeleted && a.app != nil {
			return &a.app.Managers
		}
	case ManagedGroup:
		if g := r.Groups[m.ID]; g != nil {
			return &g.Managers
		}
	case ManagedProject:
		if p := r.Projects[m.ID]; p != nil {
			return &p.Managers
		}
	}
	return nil
}

// managedEntity returns the entity whose HRN is exactly hrn, if it is of a
// kind that has managers. It does not allocate: every unscoped check asks.
func (r *Realm) managedEntity(hrn string) (ManagedRef, bool) {
	rest, ok := strings.CutPrefix(hrn, "hrn:here:")
	if !ok {
		return ManagedRef{}, false
	}
	service, rest, _ := strings.Cut(rest, "::")
	rest, ok = strings.CutPrefix(rest, r.ID)
	if !ok || !strings.HasPrefix(rest, ":") {
		return ManagedRef{}, false
	}
	rest = rest[1:]
	var m ManagedRef
	switch service {
	case "account":
		m.ID, ok = strings.CutPrefix(rest, "app/")
		m.Kind = ManagedApp
	case "authorization":
		if m.ID, ok = strings.CutPrefix(rest, "group/"); ok {
			m.Kind = ManagedGroup
		} else {
			m.ID, ok = strings.CutPrefix(rest, "project/")
			m.Kind = ManagedProject
		}
	default:
		return ManagedRef{}, false
	}
	// An id has no colon: "project/p:policy/x" is a project's policy, not
	// the project.
	return m, ok && m.ID != "" && !strings.Contains(m.ID, ":")
}

// sortedRefs returns refs in (kind, id) order, so that every copy of the
// state decides the same events.
func sortedRefs(refs map[ManagedRef]struct{}) []ManagedRef {
	out := make([]ManagedRef, 0, len(refs))
	for m := range refs {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// atAppLimit reports whether id is a user that already manages (directly)
// as many apps as a user may. HERE IAM bounds users only: apps and groups
// that manage apps (automation, teams) are bounded by the apps a realm
// holds.
func (r *Realm) atAppLimit(s *State, id string) bool {
	if u := r.Identities.Get(id); u == nil || u.Kind != KindUser {
		return false
	}
	n := 0
	for m := range r.manages[id] {
		if m.Kind == ManagedApp {
			n++
		}
	}
	return n >= s.Limits.AppsPerManager
}

// firstManager returns the event that makes creator the first manager of m,
// or none when the system creates it (bootstrap): then only the realm's
// roles manage it until someone is added. Errors: not_found (creator),
// limit_exceeded (apps per manager).
func (r *Realm) firstManager(s *State, m ManagedRef, creator string) ([]Event, error) {
	if creator == "" {
		return nil, nil
	}
	if _, err := r.identity("creator", creator); err != nil {
		return nil, err
	}
	if m.Kind == ManagedApp && r.atAppLimit(s, creator) {
		return nil, limitErr("a user manages at most %d apps", s.Limits.AppsPerManager)
	}
	return []Event{ManagerAdded{InRealm{r.ID}, m.Kind, m.ID, creator}}, nil
}

// --- commands ------------------------------------------------------------------

// creation is a command whose actor becomes the first manager of what it
// creates. Decide sets the actor, so that an API caller never names another.
type creation interface {
	Command
	createdBy(actor string) Command
}

// AddManager makes an identity or a group a manager of an app, a group or a
// project. Errors: not_found (the entity, the manager), limit_exceeded (a
// user's apps); none and no event when it already manages.
type AddManager struct {
	Entity  ManagedRef
	Manager string
}

// manageAction is the action managing m's managers needs: the same as
// managing m.
func manageAction(k ManagedKind) string {
	switch k {
	case ManagedApp:
		return ActionManageApp
	case ManagedGroup:
		return ActionManageGroup
	}
	return ActionManageProject
}

func (c AddManager) permission(r *Realm) (string, string) {
	return manageAction(c.Entity.Kind), c.Entity.HRN(r.ID)
}
func (c AddManager) validate() error { return validManaged(c.Entity, c.Manager) }
func (c AddManager) decide(s *State, r *Realm) ([]Event, error) {
	ms, ok := r.managers(c.Entity)
	if !ok {
		return nil, Errorf(ENotFound, "%s %s not found", c.Entity.Kind, c.Entity.ID)
	}
	if r.Groups[c.Manager] == nil {
		if _, err := r.identity("identityOrGroupId", c.Manager); err != nil {
			return nil, &Error{Code: ENotFound, Field: "identityOrGroupId", Message: "no identity or group " + c.Manager}
		}
	}
	if ms.Has(c.Manager) {
		return nil, nil
	}
	if c.Entity.Kind == ManagedApp && r.atAppLimit(s, c.Manager) {
		return nil, limitErr("a user manages at most %d apps", s.Limits.AppsPerManager)
	}
	return []Event{ManagerAdded{InRealm{r.ID}, c.Entity.Kind, c.Entity.ID, c.Manager}}, nil
}

// RemoveManager takes a manager from an app, a group or a project; the last
// one stays, so that nothing is orphaned by choice. Errors: not_found (the
// entity), conflict (the last manager); none and no event when it does not
// manage.
type RemoveManager struct {
	Entity  ManagedRef
	Manager string
}

func (c RemoveManager) permission(r *Realm) (string, string) {
	return manageAction(c.Entity.Kind), c.Entity.HRN(r.ID)
}
func (c RemoveManager) validate() error { return validManaged(c.Entity, c.Manager) }
func (c RemoveManager) decide(s *State, r *Realm) ([]Event, error) {
	ms, ok := r.managers(c.Entity)
	if !ok {
		return nil, Errorf(ENotFound, "%s %s not found", c.Entity.Kind, c.Entity.ID)
	}
	if !ms.Has(c.Manager) {
		return nil, nil
	}
	if ms.Len() == 1 {
		return nil, &Error{Code: EConflict, Field: "identityOrGroupId", Message: c.Manager + " is the last manager of " +
			string(c.Entity.Kind) + " " + c.Entity.ID + ": add another manager before removing it"}
	}
	return []Event{ManagerRemoved{InRealm{r.ID}, c.Entity.Kind, c.Entity.ID, c.Manager}}, nil
}

func validManaged(m ManagedRef, manager string) error {
	if _, ok := managerActions[m.Kind]; !ok {
		return FieldErrorf("kind", "%q has no managers (app, group or project)", m.Kind)
	}
	if err := ValidID("id", m.ID); err != nil {
		return err
	}
	return ValidID("identityOrGroupId", manager)
}

// --- events --------------------------------------------------------------------

// ManagerAdded makes an identity or a group a manager of an app, a group or a
// project.
type ManagerAdded struct {
	InRealm
	Kind    ManagedKind `json:"kind"`
	ID      string      `json:"id"`
	Manager string      `json:"manager"`
}

// ManagerRemoved takes a manager from an app, a group or a project.
type ManagerRemoved struct {
	InRealm
	Kind    ManagedKind `json:"kind"`
	ID      string      `json:"id"`
	Manager string      `json:"manager"`
}

// EventType implements Event.
func (ManagerAdded) EventType() string { return "ManagerAdded" }

// EventType implements Event.
func (ManagerRemoved) EventType() string { return "ManagerRemoved" }

// --- apply ---------------------------------------------------------------------

var managerChanges = map[ManagedKind]ChangeKind{
	ManagedApp:     ChangeAppManager,
	ManagedGroup:   ChangeGroupManager,
	ManagedProject: ChangeProjectManager,
}

func (e ManagerAdded) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	m := ManagedRef{e.Kind, e.ID}
	r.ownManagerSet(m).add(e.Manager)
	// A manager's set is replaced, never changed in place: snapshots
	// share it (Realm.share).
	managed := maps.Clone(r.manages[e.Manager])
	if managed == nil {
		managed = map[ManagedRef]struct{}{}
	}
	managed[m] = struct{}{}
	r.manages[e.Manager] = managed
	touch(Change{Kind: managerChanges[e.Kind], Realm: e.Realm, From: e.ID, To: e.Manager})
}

func (e ManagerRemoved) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	m := ManagedRef{e.Kind, e.ID}
	if ms := r.ownManagerSet(m); ms != nil {
		ms.remove(e.Manager)
	}
	if _, ok := r.manages[e.Manager][m]; ok {
		managed := maps.Clone(r.manages[e.Manager])
		delete(managed, m)
		if len(managed) == 0 {
			delete(r.manages, e.Manager)
		} else {
			r.manages[e.Manager] = managed
		}
	}
	touch(Change{Kind: managerChanges[e.Kind], Realm: e.Realm, From: e.ID, To: e.Manager})
}
