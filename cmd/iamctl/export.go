package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iam-project/iam/api/client"
)

// Document is a realm's access as one JSON document: what `iamctl export`
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
type Document struct {
	Version  int          `json:"version"`
	Users    []UserDoc    `json:"users"`
	Apps     []AppDoc     `json:"apps"`
	Groups   []GroupDoc   `json:"groups"`
	Policies []PolicyDoc  `json:"policies"`
	Projects []ProjectDoc `json:"projects"`
}

// documentVersion is the Document format this iamctl writes and reads.
const documentVersion = 1

// UserDoc is a user.
type UserDoc struct {
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Status string   `json:"status"`
	Roles  []string `json:"roles"`
}

// AppDoc is an app, its managers and sharees.
type AppDoc struct {
	Name           string   `json:"name"`
	Status         string   `json:"status"`
	RedirectURIs   []string `json:"redirectUris,omitempty"`
	Roles          []string `json:"roles"`
	DefaultProject string   `json:"defaultProject,omitempty"` // a project's name
	Managers       []string `json:"managers"`
	Shares         []string `json:"shares"`
}

// GroupDoc is a group, its members and managers.
type GroupDoc struct {
	Name     string   `json:"name"`
	Members  []string `json:"members"`
	Managers []string `json:"managers"`
}

// PolicyDoc is a realm policy and what it is attached to.
type PolicyDoc struct {
	Name       string             `json:"name"`
	Statements []client.Statement `json:"statements"`
	AttachedTo []string           `json:"attachedTo"`
}

// ProjectDoc is a project with its policies, members, resources and
// managers.
type ProjectDoc struct {
	Name                  string               `json:"name"`
	Policies              []ProjectPolicyDoc   `json:"policies"`
	DefaultMemberPolicies []string             `json:"defaultMemberPolicies"`
	Members               []ProjectMemberDoc   `json:"members"`
	Resources             []ProjectResourceDoc `json:"resources"`
	Managers              []string             `json:"managers"`
}

// ProjectPolicyDoc is a policy that lives in a project.
type ProjectPolicyDoc struct {
	Name       string             `json:"name"`
	Statements []client.Statement `json:"statements"`
}

// ProjectMemberDoc is a member and the policies its membership gives.
type ProjectMemberDoc struct {
	Member   string   `json:"member"`
	Policies []string `json:"policies"`
}

// ProjectResourceDoc is a resource in a project.
type ProjectResourceDoc struct {
	HRN      string `json:"hrn"`
	Relation string `json:"relation"`
}

// realmState is a realm as the API lists it, indexed for export and
// import.
type realmState struct {
	realm    string
	users    []client.Identity
	apps     []client.Identity
	groups   []client.GroupInfo
	policies []client.PolicyInfo
	projects []client.ProjectInfo
	projPols map[string]client.ProjectPolicies // by project id
	managers map[string][]client.Ref           // by "kind/id"
	shares   map[string][]client.Ref           // by app id
	// refs maps each id to its reference, KIND:NAME; ids maps back.
	refs map[string]string
	ids  map[string]string
}

// readRealm lists everything an export holds.
func readRealm(ctx context.Context, cl *client.Client) (*realmState, error) {
	st := &realmState{projPols: map[string]client.ProjectPolicies{}, managers: map[string][]client.Ref{},
		shares: map[string][]client.Ref{}, refs: map[string]string{}, ids: map[string]string{}}
	var err error
	if st.users, err = client.ListAll[client.Identity](ctx, cl, "users"); err != nil {
		return nil, err
	}
	if st.apps, err = client.ListAll[client.Identity](ctx, cl, "apps"); err != nil {
		return nil, err
	}
	if st.groups, err = client.ListAll[client.GroupInfo](ctx, cl, "groups"); err != nil {
		return nil, err
	}
	if st.policies, err = client.ListAll[client.PolicyInfo](ctx, cl, "policies"); err != nil {
		return nil, err
	}
	if st.projects, err = client.ListAll[client.ProjectInfo](ctx, cl, "projects"); err != nil {
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

func idsOf(is []client.Identity) []string {
	out := make([]string, len(is))
	for i, x := range is {
		out[i] = x.ID
	}
	return out
}

func groupIDs(gs []client.GroupInfo) []string {
	out := make([]string, len(gs))
	for i, x := range gs {
		out[i] = x.ID
	}
	return out
}

func projectIDs(ps []client.ProjectInfo) []string {
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

func (st *realmState) refsOf(rs []client.Ref) ([]string, error) {
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

func (st *realmState) templateStatements(sts []client.Statement) []client.Statement {
	out := make([]client.Statement, len(sts))
	for i, s := range sts {
		out[i] = client.Statement{Effect: s.Effect, Actions: s.Actions, Resources: make([]string, len(s.Resources))}
		for j, r := range s.Resources {
			out[i].Resources[j] = st.template(r)
		}
	}
	return out
}

// document writes the realm as a Document, sorted by names so that two
// realms with the same access write the same document.
func (st *realmState) document() (*Document, error) {
	d := &Document{Version: documentVersion, Users: []UserDoc{}, Apps: []AppDoc{}, Groups: []GroupDoc{},
		Policies: []PolicyDoc{}, Projects: []ProjectDoc{}}
	var err error
	for _, u := range st.users {
		d.Users = append(d.Users, UserDoc{Email: u.Email, Name: u.Name, Status: u.Status, Roles: sorted(u.Roles)})
	}
	for _, a := range st.apps {
		ad := AppDoc{Name: a.Name, Status: a.Status, RedirectURIs: a.RedirectURIs, Roles: sorted(a.Roles)}
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
		gd := GroupDoc{Name: g.Name}
		if gd.Members, err = st.refList(g.Members); err != nil {
			return nil, err
		}
		if gd.Managers, err = st.refsOf(st.managers["groups/"+g.ID]); err != nil {
			return nil, err
		}
		d.Groups = append(d.Groups, gd)
	}
	for _, p := range st.policies {
		pd := PolicyDoc{Name: p.Name, Statements: st.templateStatements(p.Statements)}
		if pd.AttachedTo, err = st.refList(p.AttachedTo); err != nil {
			return nil, err
		}
		d.Policies = append(d.Policies, pd)
	}
	for _, p := range st.projects {
		pp := st.projPols[p.ID]
		pd := ProjectDoc{Name: p.Name, Policies: []ProjectPolicyDoc{}, Members: []ProjectMemberDoc{}, Resources: []ProjectResourceDoc{}}
		for _, pol := range pp.Items {
			pd.Policies = append(pd.Policies, ProjectPolicyDoc{Name: pol.Name, Statements: st.templateStatements(pol.Statements)})
		}
		sort.Slice(pd.Policies, func(i, j int) bool { return pd.Policies[i].Name < pd.Policies[j].Name })
		if pd.DefaultMemberPolicies, err = st.memberPolicies(pp.DefaultMemberPolicies); err != nil {
			return nil, err
		}
		for _, m := range p.Members {
			md := ProjectMemberDoc{}
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
			pd.Resources = append(pd.Resources, ProjectResourceDoc{HRN: st.template(r.HRN), Relation: r.Relation})
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

func (s *session) exportCommand() *cobra.Command {
	var file string
	c := &cobra.Command{Use: "export", Short: "write the realm's access as one JSON document (names, not ids)", Args: cobra.NoArgs,
		Example: "  iamctl export --bootstrap old/bootstrap-admin.json > realm.json"}
	c.Flags().StringVarP(&file, "file", "f", "-", `where to write the document ("-": stdout)`)
	c.RunE = run(func(ctx context.Context, _ []string) error {
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		st, err := readRealm(ctx, cl)
		if err != nil {
			return err
		}
		d, err := st.document()
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if file == "-" {
			_, err = s.m.Stdout.Write(data)
			return err
		}
		return os.WriteFile(file, data, 0o600)
	})
	return c
}
