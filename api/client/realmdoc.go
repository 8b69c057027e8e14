package client

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// RealmDocument is a realm's access as one JSON document: what `iamctl export`
// writes and `iamctl import` reads. Entities are named by what a person
// gave them — a user's email, an app's, group's, policy's or project's
// name — never by id, so that a document moves between realms and an
// import finds what is already there. References are "KIND:NAME"
// (user:ann@example.com, app:billing, group:readers, policy:read-all). In HRNs, the realm
// is {realm} and an entity's id {KIND:NAME} ({projectPolicy:PROJECT/NAME}
// for a project's policy); a project membership names a project policy by
// its HRN, as the API does.
//
// Secrets (credentials, API keys, passwords) are not exported; nor are
// plans, which the API does not list.
type RealmDocument struct {
	Version  int          `json:"version"`
	Users    []DocUser    `json:"users"`
	Apps     []DocApp     `json:"apps"`
	Groups   []DocGroup   `json:"groups"`
	Policies []DocPolicy  `json:"policies"`
	Projects []DocProject `json:"projects"`
}

// documentVersion is the RealmDocument format this iamctl writes and reads.
const documentVersion = 1

// DocUser is a user.
type DocUser struct {
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Status string   `json:"status"`
	Roles  []string `json:"roles"`
}

// DocApp is an app, its managers and sharees.
type DocApp struct {
	Name           string   `json:"name"`
	Status         string   `json:"status"`
	RedirectURIs   []string `json:"redirectUris,omitempty"`
	Roles          []string `json:"roles"`
	DefaultProject string   `json:"defaultProject,omitempty"` // a project's name
	Managers       []string `json:"managers"`
	Shares         []string `json:"shares"`
}

// DocGroup is a group, its members and managers.
type DocGroup struct {
	Name     string   `json:"name"`
	Members  []string `json:"members"`
	Managers []string `json:"managers"`
}

// DocPolicy is a realm policy and what it is attached to.
type DocPolicy struct {
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
	AttachedTo []string    `json:"attachedTo"`
}

// DocProject is a project with its policies, members, resources and
// managers.
type DocProject struct {
	Name                  string               `json:"name"`
	Policies              []DocProjectPolicy   `json:"policies"`
	DefaultMemberPolicies []string             `json:"defaultMemberPolicies"`
	Members               []DocProjectMember   `json:"members"`
	Resources             []DocProjectResource `json:"resources"`
	Managers              []string             `json:"managers"`
}

// DocProjectPolicy is a policy that lives in a project.
type DocProjectPolicy struct {
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
}

// DocProjectMember is a member and the policies its membership gives.
type DocProjectMember struct {
	Member   string   `json:"member"`
	Policies []string `json:"policies"`
}

// DocProjectResource is a resource in a project.
type DocProjectResource struct {
	HRN      string `json:"hrn"`
	Relation string `json:"relation"`
}

// realmState is a realm as the API lists it, indexed for export and
// import.
type realmState struct {
	realm    string
	users    []Identity
	apps     []Identity
	groups   []GroupInfo
	policies []PolicyInfo
	projects []ProjectInfo
	projPols map[string]ProjectPolicies // by project id
	managers map[string][]Ref           // by "kind/id"
	shares   map[string][]Ref           // by app id
	// refs maps each id to its reference, KIND:NAME; ids maps back.
	refs map[string]string
	ids  map[string]string
}

// ExportRealm reads the caller's realm as a RealmDocument, sorted by names
// so that two realms with the same access give the same document. It
// needs the right to read every entity (OrgAdmin has it). Two entities of a
// kind with one name cannot be told apart: that is an error naming both.
func (c *Client) ExportRealm(ctx context.Context) (*RealmDocument, error) {
	st, err := readRealm(ctx, c)
	if err != nil {
		return nil, err
	}
	return st.document()
}

// readRealm lists everything an export holds.
func readRealm(ctx context.Context, cl *Client) (*realmState, error) {
	st := &realmState{projPols: map[string]ProjectPolicies{}, managers: map[string][]Ref{},
		shares: map[string][]Ref{}, refs: map[string]string{}, ids: map[string]string{}}
	var err error
	if st.users, err = ListAll[Identity](ctx, cl, "users"); err != nil {
		return nil, err
	}
	if st.apps, err = ListAll[Identity](ctx, cl, "apps"); err != nil {
		return nil, err
	}
	if st.groups, err = ListAll[GroupInfo](ctx, cl, "groups"); err != nil {
		return nil, err
	}
	if st.policies, err = ListAll[PolicyInfo](ctx, cl, "policies"); err != nil {
		return nil, err
	}
	if st.projects, err = ListAll[ProjectInfo](ctx, cl, "projects"); err != nil {
		return nil, err
	}
	for _, p := range st.projects {
		if st.projPols[p.ID], err = cl.ProjectPolicies(ctx, p.ID); err != nil {
			return nil, err
		}
	}
	for kind, ids := range map[string][]string{"apps": idsOf(st.apps), "groups": groupIDs(st.groups), "projects": projectIDs(st.projects)} {
		for _, id := range ids {
			if st.managers[kind+"/"+id], err = cl.Managers(ctx, kind, id); err != nil {
				return nil, err
			}
		}
	}
	for _, a := range st.apps {
		if st.shares[a.ID], err = cl.Shares(ctx, a.ID); err != nil {
			return nil, err
		}
	}
	// Every realm holds its caller, so some identity names the realm.
	for _, i := range append(slices.Clone(st.users), st.apps...) {
		if parts := strings.Split(i.HRN, ":"); len(parts) > 4 {
			st.realm = parts[4]
			break
		}
	}
	if st.realm == "" {
		return nil, fmt.Errorf("the realm has no identity to learn its id from")
	}
	return st, st.index()
}

func idsOf(is []Identity) []string {
	out := make([]string, len(is))
	for i, x := range is {
		out[i] = x.ID
	}
	return out
}

func groupIDs(gs []GroupInfo) []string {
	out := make([]string, len(gs))
	for i, x := range gs {
		out[i] = x.ID
	}
	return out
}

func projectIDs(ps []ProjectInfo) []string {
	out := make([]string, len(ps))
	for i, x := range ps {
		out[i] = x.ID
	}
	return out
}

// index names every entity by reference; two entities of a kind with one
// name cannot be told apart by an export.
func (st *realmState) index() error {
	add := func(id, ref string) error {
		if other, ok := st.ids[ref]; ok {
			return fmt.Errorf("%s and %s are both %s: an export names entities, so rename one", other, id, ref)
		}
		st.refs[id], st.ids[ref] = ref, id
		return nil
	}
	for _, u := range st.users {
		if err := add(u.ID, "user:"+u.Email); err != nil {
			return err
		}
	}
	for _, a := range st.apps {
		if err := add(a.ID, "app:"+a.Name); err != nil {
			return err
		}
	}
	for _, g := range st.groups {
		if err := add(g.ID, "group:"+g.Name); err != nil {
			return err
		}
	}
	for _, p := range st.policies {
		if err := add(p.ID, "policy:"+p.Name); err != nil {
			return err
		}
	}
	for _, p := range st.projects {
		if err := add(p.ID, "project:"+p.Name); err != nil {
			return err
		}
		for _, pp := range st.projPols[p.ID].Items {
			if err := add(pp.ID, "projectPolicy:"+p.Name+"/"+pp.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// ref is the reference of id.
func (st *realmState) ref(id string) (string, error) {
	if r, ok := st.refs[id]; ok {
		return r, nil
	}
	return "", fmt.Errorf("%s is referred to but not listed", id)
}

func (st *realmState) refList(ids []string) ([]string, error) {
	out := []string{}
	for _, id := range ids {
		r, err := st.ref(id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

// memberPolicies writes a project membership's policies: a realm policy
// by reference, a project policy by its templated HRN (as the API names it).
func (st *realmState) memberPolicies(entries []string) ([]string, error) {
	out := []string{}
	for _, e := range entries {
		if strings.HasPrefix(e, "hrn:") {
			out = append(out, st.template(e))
			continue
		}
		r, err := st.ref(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

func (st *realmState) refsOf(rs []Ref) ([]string, error) {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return st.refList(ids)
}

// idSegment is a path segment of an HRN that may be an entity's id.
var idSegment = regexp.MustCompile(`/[^/:*,{}]+`)

// template writes an HRN for another realm: the realm as {realm}, each
// known id as {KIND:NAME}.
func (st *realmState) template(h string) string {
	h = strings.ReplaceAll(h, st.realm, "{realm}")
	return idSegment.ReplaceAllStringFunc(h, func(seg string) string {
		if r, ok := st.refs[seg[1:]]; ok {
			return "/{" + r + "}"
		}
		return seg
	})
}

func (st *realmState) templateStatements(sts []Statement) []Statement {
	out := make([]Statement, len(sts))
	for i, s := range sts {
		out[i] = Statement{Effect: s.Effect, Actions: s.Actions, Resources: make([]string, len(s.Resources))}
		for j, r := range s.Resources {
			out[i].Resources[j] = st.template(r)
		}
	}
	return out
}

// document writes the realm as a RealmDocument.
func (st *realmState) document() (*RealmDocument, error) {
	d := &RealmDocument{Version: documentVersion, Users: []DocUser{}, Apps: []DocApp{}, Groups: []DocGroup{},
		Policies: []DocPolicy{}, Projects: []DocProject{}}
	var err error
	for _, u := range st.users {
		d.Users = append(d.Users, DocUser{Email: u.Email, Name: u.Name, Status: u.Status, Roles: sorted(u.Roles)})
	}
	for _, a := range st.apps {
		ad := DocApp{Name: a.Name, Status: a.Status, RedirectURIs: a.RedirectURIs, Roles: sorted(a.Roles)}
		if a.DefaultProject != "" {
			id := a.DefaultProject[strings.LastIndex(a.DefaultProject, "/")+1:]
			r, err := st.ref(id)
			if err != nil {
				return nil, err
			}
			ad.DefaultProject = strings.TrimPrefix(r, "project:")
		}
		if ad.Managers, err = st.refsOf(st.managers["apps/"+a.ID]); err != nil {
			return nil, err
		}
		if ad.Shares, err = st.refsOf(st.shares[a.ID]); err != nil {
			return nil, err
		}
		d.Apps = append(d.Apps, ad)
	}
	for _, g := range st.groups {
		gd := DocGroup{Name: g.Name}
		if gd.Members, err = st.refList(g.Members); err != nil {
			return nil, err
		}
		if gd.Managers, err = st.refsOf(st.managers["groups/"+g.ID]); err != nil {
			return nil, err
		}
		d.Groups = append(d.Groups, gd)
	}
	for _, p := range st.policies {
		pd := DocPolicy{Name: p.Name, Statements: st.templateStatements(p.Statements)}
		if pd.AttachedTo, err = st.refList(p.AttachedTo); err != nil {
			return nil, err
		}
		d.Policies = append(d.Policies, pd)
	}
	for _, p := range st.projects {
		pp := st.projPols[p.ID]
		pd := DocProject{Name: p.Name, Policies: []DocProjectPolicy{}, Members: []DocProjectMember{}, Resources: []DocProjectResource{}}
		for _, pol := range pp.Items {
			pd.Policies = append(pd.Policies, DocProjectPolicy{Name: pol.Name, Statements: st.templateStatements(pol.Statements)})
		}
		sort.Slice(pd.Policies, func(i, j int) bool { return pd.Policies[i].Name < pd.Policies[j].Name })
		if pd.DefaultMemberPolicies, err = st.memberPolicies(pp.DefaultMemberPolicies); err != nil {
			return nil, err
		}
		for _, m := range p.Members {
			md := DocProjectMember{}
			if md.Member, err = st.ref(m.ID); err != nil {
				return nil, err
			}
			if md.Policies, err = st.memberPolicies(m.Policies); err != nil {
				return nil, err
			}
			pd.Members = append(pd.Members, md)
		}
		sort.Slice(pd.Members, func(i, j int) bool { return pd.Members[i].Member < pd.Members[j].Member })
		for _, r := range p.Resources {
			pd.Resources = append(pd.Resources, DocProjectResource{HRN: st.template(r.HRN), Relation: r.Relation})
		}
		sort.Slice(pd.Resources, func(i, j int) bool { return pd.Resources[i].HRN < pd.Resources[j].HRN })
		if pd.Managers, err = st.refsOf(st.managers["projects/"+p.ID]); err != nil {
			return nil, err
		}
		d.Projects = append(d.Projects, pd)
	}
	sort.Slice(d.Users, func(i, j int) bool { return d.Users[i].Email < d.Users[j].Email })
	sort.Slice(d.Apps, func(i, j int) bool { return d.Apps[i].Name < d.Apps[j].Name })
	sort.Slice(d.Groups, func(i, j int) bool { return d.Groups[i].Name < d.Groups[j].Name })
	sort.Slice(d.Policies, func(i, j int) bool { return d.Policies[i].Name < d.Policies[j].Name })
	sort.Slice(d.Projects, func(i, j int) bool { return d.Projects[i].Name < d.Projects[j].Name })
	return d, nil
}

func sorted(ss []string) []string {
	out := append([]string{}, ss...)
	sort.Strings(out)
	return out
}
