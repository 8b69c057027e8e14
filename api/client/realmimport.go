package client

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	iam "github.com/iam-project/iam"
)

// importer applies a RealmDocument to a realm: it creates what is missing and
// adds the relations that are missing, matching entities by name, so that
// a second import of the same document writes nothing. It never removes:
// what the realm holds beyond the document stays.
type importer struct {
	cl     *Client
	st     *realmState
	warn   func(string)
	writes int
	last   string // the last write's consistency token
}

// ImportResult is what an import wrote: how many writes, and the last
// one's consistency token (empty when it wrote nothing).
type ImportResult struct {
	Writes           int    `json:"writes"`
	ConsistencyToken string `json:"consistencyToken"`
}

// ImportRealm applies d to the caller's realm: it creates the users, apps,
// groups, policies and projects the realm lacks (matched by email or name)
// and adds the roles, members, attachments, project members, resources,
// default policies, default projects, managers and shares it lacks, then
// sets names of users and statuses that differ. It removes nothing, so a second import of one document
// writes nothing. A policy that exists with other statements is left as it
// is, and warn (if not nil) is told. On an error, the result counts the
// writes made before it.
func (c *Client) ImportRealm(ctx context.Context, d *RealmDocument, warn func(string)) (ImportResult, error) {
	st, err := readRealm(ctx, c)
	if err != nil {
		return ImportResult{}, err
	}
	im := &importer{cl: c, st: st, warn: warn}
	err = im.run(ctx, d)
	return ImportResult{Writes: im.writes, ConsistencyToken: im.last}, err
}

// wrote counts a write and keeps its token.
func (im *importer) wrote(r WriteResult, err error) error {
	if err != nil {
		return err
	}
	im.writes++
	im.last = r.ConsistencyToken
	return nil
}

// id resolves a reference (KIND:NAME) to the id it names in the realm.
func (im *importer) id(ref string) (string, error) {
	if id, ok := im.st.ids[ref]; ok {
		return id, nil
	}
	return "", fmt.Errorf("%q names nothing in the document or the realm", ref)
}

// memberPolicy resolves a project membership's policy: a realm policy's
// reference, or a project policy's templated HRN.
func (im *importer) memberPolicy(entry string) (string, error) {
	if strings.HasPrefix(entry, "hrn:") {
		return im.hrn(entry)
	}
	return im.id(entry)
}

var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

// hrn fills a templated HRN in for this realm.
func (im *importer) hrn(h string) (string, error) {
	var err error
	out := placeholder.ReplaceAllStringFunc(h, func(p string) string {
		ref := p[1 : len(p)-1]
		if ref == "realm" {
			return im.st.realm
		}
		id, ok := im.st.ids[ref]
		if !ok {
			err = fmt.Errorf("%s: {%s} names nothing in the document or the realm", h, ref)
		}
		return id
	})
	return out, err
}

func (im *importer) statements(sts []Statement) ([]Statement, error) {
	out := make([]Statement, len(sts))
	for i, s := range sts {
		out[i] = Statement{Effect: s.Effect, Actions: s.Actions, Resources: make([]string, len(s.Resources))}
		for j, r := range s.Resources {
			h, err := im.hrn(r)
			if err != nil {
				return nil, err
			}
			out[i].Resources[j] = h
		}
	}
	return out, nil
}

func (im *importer) remember(id, ref string) { im.st.ids[ref], im.st.refs[id] = id, ref }

// run applies d: entities first (policies after the entities their
// statements name), then relations, statuses last so that a deactivated
// identity is set up before it is switched off.
func (im *importer) run(ctx context.Context, d *RealmDocument) error {
	if d.Version != documentVersion {
		return fmt.Errorf("document version %d; this client reads version %d", d.Version, documentVersion)
	}
	cl := im.cl
	names := map[string]string{}
	for _, u := range im.st.users {
		names[u.Email] = u.Name
	}
	for _, u := range d.Users {
		if name, ok := names[u.Email]; ok && name != u.Name && u.Name != "" {
			if err := im.wrote(cl.UpdateUser(ctx, im.st.ids["user:"+u.Email], u.Name, "")); err != nil {
				return fmt.Errorf("user %s: %w", u.Email, err)
			}
		}
		if _, ok := im.st.ids["user:"+u.Email]; !ok {
			nu, err := cl.CreateUser(ctx, u.Email, u.Name, "")
			if err := im.wrote(nu.WriteResult, err); err != nil {
				return fmt.Errorf("user %s: %w", u.Email, err)
			}
			im.remember(nu.ID, "user:"+u.Email)
		}
	}
	for _, a := range d.Apps {
		if _, ok := im.st.ids["app:"+a.Name]; !ok {
			na, err := cl.CreateApp(ctx, a.Name, a.RedirectURIs...)
			if err := im.wrote(na.WriteResult, err); err != nil {
				return fmt.Errorf("app %s: %w", a.Name, err)
			}
			im.remember(na.ID, "app:"+a.Name)
		}
	}
	for _, g := range d.Groups {
		if _, ok := im.st.ids["group:"+g.Name]; !ok {
			ng, err := cl.CreateGroup(ctx, g.Name)
			if err := im.wrote(ng.WriteResult, err); err != nil {
				return fmt.Errorf("group %s: %w", g.Name, err)
			}
			im.remember(ng.ID, "group:"+g.Name)
		}
	}
	for _, p := range d.Projects {
		if _, ok := im.st.ids["project:"+p.Name]; !ok {
			np, err := cl.CreateProject(ctx, p.Name)
			if err := im.wrote(np.WriteResult, err); err != nil {
				return fmt.Errorf("project %s: %w", p.Name, err)
			}
			im.remember(np.ID, "project:"+p.Name)
		}
	}
	if err := im.resources(ctx, d); err != nil {
		return err
	}
	if err := im.policies(ctx, d); err != nil {
		return err
	}
	if err := im.relations(ctx, d); err != nil {
		return err
	}
	return im.statuses(ctx, d)
}

// policies creates the missing realm and project policies; one that exists
// with other statements is left as it is, with a warning, since the API
// does not edit a policy's statements.
func (im *importer) policies(ctx context.Context, d *RealmDocument) error {
	existing := map[string][]Statement{}
	for _, p := range im.st.policies {
		existing["policy:"+p.Name] = p.Statements
	}
	for _, p := range im.st.projects {
		for _, pp := range im.st.projPols[p.ID].Items {
			existing["projectPolicy:"+p.Name+"/"+pp.Name] = pp.Statements
		}
	}
	check := func(ref string, want []Statement) bool {
		have, ok := existing[ref]
		if ok && !slices.EqualFunc(have, want, statementEqual) {
			if im.warn != nil {
				im.warn(ref + " exists with other statements; left as it is")
			}
		}
		return ok
	}
	for _, p := range d.Projects {
		project := im.st.ids["project:"+p.Name]
		for _, pp := range p.Policies {
			sts, err := im.statements(pp.Statements)
			if err != nil {
				return fmt.Errorf("project %s policy %s: %w", p.Name, pp.Name, err)
			}
			ref := "projectPolicy:" + p.Name + "/" + pp.Name
			if check(ref, sts) {
				continue
			}
			np, err := im.cl.CreateProjectPolicy(ctx, project, pp.Name, sts...)
			if err := im.wrote(np.WriteResult, err); err != nil {
				return fmt.Errorf("project %s policy %s: %w", p.Name, pp.Name, err)
			}
			im.remember(np.ID, ref)
		}
	}
	for _, p := range d.Policies {
		sts, err := im.statements(p.Statements)
		if err != nil {
			return fmt.Errorf("policy %s: %w", p.Name, err)
		}
		if check("policy:"+p.Name, sts) {
			continue
		}
		np, err := im.cl.CreatePolicy(ctx, p.Name, sts...)
		if err := im.wrote(np.WriteResult, err); err != nil {
			return fmt.Errorf("policy %s: %w", p.Name, err)
		}
		im.remember(np.ID, "policy:"+p.Name)
	}
	return nil
}

func statementEqual(a, b Statement) bool {
	return a.Effect == b.Effect && slices.Equal(a.Actions, b.Actions) && slices.Equal(a.Resources, b.Resources)
}

// resources puts the document's resources in their projects, every home
// before any link (a link needs the resource's home), before the project
// policies that name them are made.
func (im *importer) resources(ctx context.Context, d *RealmDocument) error {
	have := im.existingRelations()
	for _, relationKind := range []string{"home", "link"} {
		for _, p := range d.Projects {
			pid, err := im.id("project:" + p.Name)
			if err != nil {
				return err
			}
			for _, r := range p.Resources {
				if r.Relation != relationKind {
					continue
				}
				h, err := im.hrn(r.HRN)
				if err != nil {
					return err
				}
				if have["resource "+pid+" "+h+" "+r.Relation] {
					continue
				}
				if err := im.wrote(im.cl.AddProjectResource(ctx, pid, h, r.Relation)); err != nil {
					return fmt.Errorf("project %s resource %s: %w", p.Name, h, err)
				}
			}
		}
	}
	return nil
}

// relation is one relation the document asks for: the ids it links, and
// the write that adds it.
type relation struct {
	what string
	add  func() (WriteResult, error)
}

// relations adds the roles, members, attachments, project members,
// default policies, default projects, managers and shares that
// the realm lacks.
func (im *importer) relations(ctx context.Context, d *RealmDocument) error {
	have := im.existingRelations()
	var todo []relation
	need := func(key string, add func() (WriteResult, error)) {
		if !have[key] {
			have[key] = true
			todo = append(todo, relation{key, add})
		}
	}
	var errs []error
	resolve := func(ref string) string {
		id, err := im.id(ref)
		if err != nil {
			errs = append(errs, err)
		}
		return id
	}
	resolvePolicy := func(entry string) string {
		id, err := im.memberPolicy(entry)
		if err != nil {
			errs = append(errs, err)
		}
		return id
	}
	cl := im.cl
	for _, u := range d.Users {
		id := resolve("user:" + u.Email)
		for _, r := range u.Roles {
			need("role "+id+" "+r, func() (WriteResult, error) { return cl.GrantRole(ctx, id, r) })
		}
	}
	for _, g := range d.Groups {
		gid := resolve("group:" + g.Name)
		for _, m := range g.Members {
			mid := resolve(m)
			need("member "+gid+" "+mid, func() (WriteResult, error) { return cl.AddMember(ctx, gid, mid) })
		}
	}
	for _, p := range d.Policies {
		pid := resolve("policy:" + p.Name)
		for _, t := range p.AttachedTo {
			tid := resolve(t)
			need("attach "+pid+" "+tid, func() (WriteResult, error) { return cl.AttachPolicy(ctx, pid, tid) })
		}
	}
	for _, p := range d.Projects {
		pid := resolve("project:" + p.Name)
		var defaults []string
		for _, ref := range p.DefaultMemberPolicies {
			defaults = append(defaults, resolvePolicy(ref))
		}
		// A project made by this import has none; say nothing of defaults
		// the document does not give.
		if len(defaults) > 0 || len(im.st.projPols[pid].DefaultMemberPolicies) > 0 {
			need("defaults "+pid+" "+strings.Join(sorted(defaults), ","), func() (WriteResult, error) {
				return cl.SetDefaultMemberPolicies(ctx, pid, defaults...)
			})
		}
		for _, m := range p.Members {
			mid := resolve(m.Member)
			var pols []string
			for _, ref := range m.Policies {
				pols = append(pols, resolvePolicy(ref))
			}
			need("projectMember "+pid+" "+mid+" "+strings.Join(sorted(pols), ","), func() (WriteResult, error) {
				return cl.SetProjectMember(ctx, pid, mid, pols...)
			})
		}
	}
	for _, a := range d.Apps {
		aid := resolve("app:" + a.Name)
		for _, r := range a.Roles {
			need("role "+aid+" "+r, func() (WriteResult, error) { return cl.GrantRole(ctx, aid, r) })
		}
		if a.DefaultProject != "" {
			pid := resolve("project:" + a.DefaultProject)
			need("defaultProject "+aid+" "+pid, func() (WriteResult, error) {
				return cl.SetAppDefaultProject(ctx, aid, im.projectHRN(pid))
			})
		}
		for _, sh := range a.Shares {
			sid := resolve(sh)
			need("share "+aid+" "+sid, func() (WriteResult, error) { return cl.ShareApp(ctx, aid, sid) })
		}
	}
	managed := func(kind, ref string, managers []string) {
		id := resolve(ref)
		for _, m := range managers {
			mid := resolve(m)
			need("manager "+kind+"/"+id+" "+mid, func() (WriteResult, error) { return cl.AddManager(ctx, kind, id, mid) })
		}
	}
	for _, a := range d.Apps {
		managed("apps", "app:"+a.Name, a.Managers)
	}
	for _, g := range d.Groups {
		managed("groups", "group:"+g.Name, g.Managers)
	}
	for _, p := range d.Projects {
		managed("projects", "project:"+p.Name, p.Managers)
	}
	if len(errs) > 0 {
		return errs[0]
	}
	for _, r := range todo {
		if err := im.wrote(r.add()); err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
	}
	return nil
}

func (im *importer) projectHRN(id string) string {
	return iam.ProjectHRN(im.st.realm, id)
}

// existingRelations are the keys of the relations the realm holds, in the
// words relations uses.
func (im *importer) existingRelations() map[string]bool {
	st := im.st
	have := map[string]bool{}
	for _, i := range append(slices.Clone(st.users), st.apps...) {
		for _, r := range i.Roles {
			have["role "+i.ID+" "+r] = true
		}
		if i.DefaultProject != "" {
			have["defaultProject "+i.ID+" "+i.DefaultProject[strings.LastIndex(i.DefaultProject, "/")+1:]] = true
		}
	}
	for _, g := range st.groups {
		for _, m := range g.Members {
			have["member "+g.ID+" "+m] = true
		}
	}
	for _, p := range st.policies {
		for _, t := range p.AttachedTo {
			have["attach "+p.ID+" "+t] = true
		}
	}
	for _, p := range st.projects {
		for _, r := range p.Resources {
			have["resource "+p.ID+" "+r.HRN+" "+r.Relation] = true
		}
		have["defaults "+p.ID+" "+strings.Join(sorted(st.projPols[p.ID].DefaultMemberPolicies), ",")] = true
		for _, m := range p.Members {
			have["projectMember "+p.ID+" "+m.ID+" "+strings.Join(sorted(m.Policies), ",")] = true
		}
	}
	for key, refs := range st.managers {
		for _, r := range refs {
			have["manager "+key+" "+r.ID] = true
		}
	}
	for app, refs := range st.shares {
		for _, r := range refs {
			have["share "+app+" "+r.ID] = true
		}
	}
	return have
}

// statuses deactivates (or activates) identities whose status differs.
func (im *importer) statuses(ctx context.Context, d *RealmDocument) error {
	status := map[string]string{}
	for _, i := range append(slices.Clone(im.st.users), im.st.apps...) {
		status[i.ID] = i.Status
	}
	for _, u := range d.Users {
		id := im.st.ids["user:"+u.Email]
		if u.Status != "" && status[id] != u.Status && !(status[id] == "" && u.Status == "active") {
			if err := im.wrote(im.cl.SetUserStatus(ctx, id, u.Status)); err != nil {
				return fmt.Errorf("user %s status: %w", u.Email, err)
			}
		}
	}
	for _, a := range d.Apps {
		id := im.st.ids["app:"+a.Name]
		if a.Status != "" && status[id] != a.Status && !(status[id] == "" && a.Status == "active") {
			if err := im.wrote(im.cl.SetAppStatus(ctx, id, a.Status)); err != nil {
				return fmt.Errorf("app %s status: %w", a.Name, err)
			}
		}
	}
	return nil
}
