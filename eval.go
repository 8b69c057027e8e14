package iam

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"
)

// CheckRequest asks whether Subject may perform Action on Resource. Scope is
// a project id ("" for an unscoped check).
type CheckRequest struct {
	Realm    string
	Subject  string
	Action   string
	Resource string
	Scope    string
}

// Decision is a check's answer. Its reason names the deciding statement, or
// what is missing; it is put into words only when asked for (Reason), so a
// check allocates nothing: at 10M grants an allocation a check was what
// made its p99 (docs/benchmarks.md).
type Decision struct {
	Allowed bool
	why     why
}

// why is what a reason is made of: a deciding statement (verdict set), or
// a template of fixed words with a and b between them (what no statement
// allows, a denial before any statement is read, a reason given whole).
// Kept this small because a check returns it by value.
type why struct {
	verdict string // "allowed by " or "denied by "
	src     Source
	stmt    int
	tmpl    *[3]string // the reason is tmpl[0] + a + tmpl[1] + b + tmpl[2]
	a, b    string
}

// Templates of reasons (why.tmpl).
var (
	reasonGiven          = [3]string{}
	reasonNoStatement    = [3]string{"no statement allows ", " on ", ""}
	reasonUnknownRealm   = [3]string{"realm ", " is unknown", ""}
	reasonUnknownSubject = [3]string{"subject ", " is unknown", ""}
	reasonDeleted        = [3]string{"subject ", " is deleted", ""}
	reasonStatus         = [3]string{"subject ", " is ", ""}
	reasonNotActive      = [3]string{"subject ", " is not an active identity", ""}
	reasonInProject      = [3]string{"", " is in project ", ": only a check scoped to a project holding it can reach it"}
	reasonUnknownProject = [3]string{"project ", " is unknown", ""}
	reasonNotInProject   = [3]string{"", " is not in project ", ""}
	reasonNotMember      = [3]string{"subject ", " is not a member of project ", " (directly or through a group)"}
)

// Denied is a denial for a reason given whole.
func Denied(reason string) Decision { return deniedFor(&reasonGiven, reason, "") }

// deniedFor is a denial whose reason is put into words only when asked
// for: a check of an unknown subject, or outside its project, allocates
// nothing either.
func deniedFor(tmpl *[3]string, a, b string) Decision {
	return Decision{why: why{tmpl: tmpl, a: a, b: b}}
}

// Reason says why the check was answered so.
func (d Decision) Reason() string {
	w := &d.why
	switch {
	case w.verdict != "":
		return w.verdict + w.src.describe(w.stmt)
	case w.tmpl == nil:
		return ""
	}
	return w.tmpl[0] + w.a + w.tmpl[1] + w.b + w.tmpl[2]
}

// MarshalJSON writes {"allowed": …, "reason": …}.
func (d Decision) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Allowed bool   `json:"allowed"`
		Reason  string `json:"reason"`
	}{d.Allowed, d.Reason()})
}

// Grant source kinds, for reasons and effective permissions.
const (
	SourcePolicy  = "policy"
	SourceRole    = "role"
	SourceManager = "manager" // ID is the managed entity, "<kind>/<id>"
)

// sourceWords says how a grant that is no policy statement reaches a
// subject: a manager's right, a sharee's.
var sourceWords = map[string]string{SourceManager: "manager of ", SourceShare: "share of "}

// Source says where a statement reaches a subject from.
type Source struct {
	Kind    string `json:"kind"`              // policy, role or manager
	ID      string `json:"id"`                // policy id, role name or managed entity
	Via     string `json:"via,omitempty"`     // group id, when inherited through a group
	Plan    string `json:"plan,omitempty"`    // plan id, when the policy comes with a plan
	Project string `json:"project,omitempty"` // project id, for project memberships
}

func (src Source) describe(stmt int) string {
	s := src.Kind + " " + src.ID + " statement " + strconv.Itoa(stmt)
	if w, ok := sourceWords[src.Kind]; ok {
		s = w + src.ID // a manager's or sharee's right is no statement of a policy
	}
	if src.Plan != "" {
		s += " of plan " + src.Plan
	}
	if src.Via != "" {
		s += " via group " + src.Via
	}
	if src.Project != "" {
		s += " in project " + src.Project
	}
	return s
}

// evaluation collects the matching deny and allow statements. When several
// match, the one named in the reason is the least by (source, statement), so
// every replica gives the same reason for the same state, whatever the order
// in which it walks its maps.
type evaluation struct {
	action, resource string
	deny, allow      match
}

type match struct {
	ok   bool
	src  Source
	stmt int
}

func (m *match) offer(src Source, stmt int) {
	if !m.ok || src.less(stmt, m.src, m.stmt) {
		*m = match{true, src, stmt}
	}
}

func (a Source) less(aStmt int, b Source, bStmt int) bool {
	switch {
	case a.Kind != b.Kind:
		return a.Kind < b.Kind
	case a.ID != b.ID:
		return a.ID < b.ID
	case a.Via != b.Via:
		return a.Via < b.Via
	case a.Project != b.Project:
		return a.Project < b.Project
	case a.Plan != b.Plan:
		return a.Plan < b.Plan
	}
	return aStmt < bStmt
}

func (e *evaluation) statements(stmts []Statement, src Source) {
	for i := range stmts {
		st := &stmts[i]
		if !st.matches(e.action, e.resource) {
			continue
		}
		if st.Effect == Deny {
			e.deny.offer(src, i)
		} else {
			e.allow.offer(src, i)
		}
	}
}

func (st *Statement) matches(action, resource string) bool {
	actionOK := false
	for _, a := range st.Actions {
		if MatchAction(a, action) {
			actionOK = true
			break
		}
	}
	if !actionOK {
		return false
	}
	for _, r := range st.Resources {
		if MatchResource(r, resource) {
			return true
		}
	}
	return false
}

// policies evaluates the policies given to a membership of project p.
func (e *evaluation) policies(r *Realm, p *Project, ids []string, src Source) {
	for _, id := range ids {
		if pol := r.MemberPolicy(p, id); pol != nil {
			src.ID = id
			e.statements(pol.Statements, src)
		}
	}
}

// plans evaluates the policies of plans, as realm-wide policies.
func (e *evaluation) plans(r *Realm, plans set, via string) {
	for plan := range plans.All() {
		if pl := r.Plans[plan]; pl != nil {
			for _, id := range pl.Policies {
				if pol := r.Policies[id]; pol != nil {
					e.statements(pol.Statements, Source{Kind: SourcePolicy, ID: id, Via: via, Plan: plan})
				}
			}
		}
	}
}

func (e *evaluation) policySet(r *Realm, ids set, src Source) {
	for id := range ids.All() {
		if p := r.Policies[id]; p != nil {
			src.ID = id
			e.statements(p.Statements, src)
		}
	}
}

// managed offers the manager's right when the resource is an app, a group
// or a project that the subject manages, directly or through a group, and
// a sharee's right when it is an app shared with the subject. Like any
// allow, an explicit deny beats it.
func (e *evaluation) managed(r *Realm, id *Identity) {
	m, ok := r.managedEntity(e.resource)
	if !ok {
		return
	}
	e.shared(r, id, m)
	if !slices.Contains(managerActions[m.Kind], e.action) {
		return
	}
	ms, ok := r.managers(m)
	if !ok {
		return
	}
	src := Source{Kind: SourceManager, ID: string(m.Kind) + "/" + m.ID}
	if ms.Has(id.ID) {
		e.allow.offer(src, 0)
	}
	for g := range id.Groups.All() {
		if ms.Has(g) {
			src.Via = g
			e.allow.offer(src, 0)
		}
	}
}

// realmWide offers what reaches the subject outside projects: realm-wide
// policies, plans and roles (direct or through groups), managers' and
// sharees' rights.
func (e *evaluation) realmWide(r *Realm, id *Identity) {
	e.policySet(r, id.Policies, Source{Kind: SourcePolicy})
	e.plans(r, id.Plans, "")
	for g := range id.Groups.All() {
		if grp := r.Groups[g]; grp != nil {
			e.policySet(r, grp.Policies, Source{Kind: SourcePolicy, Via: g})
			e.plans(r, grp.Plans, g)
		}
	}
	for role := range id.Roles.All() {
		e.statements(r.roleCache[role], Source{Kind: SourceRole, ID: role})
	}
	e.managed(r, id)
}

// realmWide decides as an unscoped check of an active subject does, but
// whether or not the resource is in a project: what the realm itself
// grants on a resource it holds outside any home (linking it needs share
// from the realm even once it is linked somewhere).
func (s *State) realmWide(r *Realm, subject, action, resource string) Decision {
	id := r.Identities.Get(subject)
	if id == nil || id.Status != StatusActive {
		return deniedFor(&reasonNotActive, subject, "")
	}
	ev := evaluation{action: action, resource: resource}
	ev.realmWide(r, id)
	return ev.decision()
}

func (e *evaluation) decision() Decision {
	switch {
	case e.deny.ok:
		return Decision{why: why{verdict: "denied by ", src: e.deny.src, stmt: e.deny.stmt}}
	case e.allow.ok:
		return Decision{Allowed: true, why: why{verdict: "allowed by ", src: e.allow.src, stmt: e.allow.stmt}}
	}
	return deniedFor(&reasonNoStatement, e.action, e.resource)
}

// Check evaluates a request: default deny, an explicit deny beats any allow.
// Unscoped, it reaches only resources outside projects, through realm-wide
// policies, plans and roles (direct or through groups). Scoped to a project,
// it reaches only that project's resources (home or linked), through the
// policies given to the subject's membership of that project (realm policies
// or the project's own), directly or through a group that is a member.
func (s *State) Check(q CheckRequest) Decision {
	r := s.realms[q.Realm]
	if r == nil {
		return deniedFor(&reasonUnknownRealm, q.Realm, "")
	}
	id := r.Identities.Get(q.Subject)
	switch {
	case id == nil:
		return deniedFor(&reasonUnknownSubject, q.Subject, "")
	case id.Status == StatusDeleted:
		return deniedFor(&reasonDeleted, q.Subject, "")
	case id.Status != StatusActive:
		return deniedFor(&reasonStatus, q.Subject, string(id.Status))
	}
	ev := evaluation{action: q.Action, resource: q.Resource}
	placement := r.Resources[q.Resource]
	if q.Scope == "" {
		if placement != nil {
			home := placement.Home
			if home == "" { // the least link, as Sorted would give, without its slice
				for link := range placement.Links.All() {
					if home == "" || link < home {
						home = link
					}
				}
			}
			return deniedFor(&reasonInProject, q.Resource, home)
		}
		ev.realmWide(r, id)
		return ev.decision()
	}
	p := r.Projects[q.Scope]
	if p == nil {
		return deniedFor(&reasonUnknownProject, q.Scope, "")
	}
	if placement == nil || (placement.Home != q.Scope && !placement.Links.Has(q.Scope)) {
		return deniedFor(&reasonNotInProject, q.Resource, q.Scope)
	}
	pols, member := p.Members[q.Subject]
	if member {
		ev.policies(r, p, pols, Source{Kind: SourcePolicy, Project: q.Scope})
	}
	for g := range id.Groups.All() {
		if pols, ok := p.Members[g]; ok {
			member = true
			ev.policies(r, p, pols, Source{Kind: SourcePolicy, Via: g, Project: q.Scope})
		}
	}
	if !member {
		return deniedFor(&reasonNotMember, q.Subject, q.Scope)
	}
	return ev.decision()
}

// Permission is one effective permission of an identity and where it comes from.
type Permission struct {
	Effect   Effect `json:"effect"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Source   Source `json:"source"`
}

// Permissions lists an identity's effective permissions with their
// provenance: realm-wide policies and roles, direct or through groups, and
// project memberships. It returns not_found for an unknown identity.
func (s *State) Permissions(realm, identity string) ([]Permission, error) {
	r := s.realms[realm]
	if r == nil || r.Identities.Get(identity) == nil || r.Identities.Get(identity).Status == StatusDeleted {
		return nil, Errorf(ENotFound, "identity %s not found", identity)
	}
	id := r.Identities.Get(identity)
	return r.permissions(identity, id.Policies, id.Plans, id.Roles, id.Groups.Sorted(), id.Projects), nil
}

// GroupPermissions lists what a group's members get from the group itself:
// the policies attached to it realm-wide and its project memberships, with
// the same provenance as Permissions. It returns not_found for an unknown
// group.
func (s *State) GroupPermissions(realm, group string) ([]Permission, error) {
	r := s.realms[realm]
	if r == nil || r.Groups[group] == nil {
		return nil, &Error{Code: ENotFound, Field: "id", Message: "group " + group + " not found"}
	}
	g := r.Groups[group]
	return r.permissions(group, g.Policies, g.Plans, set{}, nil, g.Projects), nil
}

// permissions is the one evaluation behind Permissions and GroupPermissions:
// member's attached policies, plans and roles, those of its groups, and the
// project memberships of member (direct projects) and of its groups; denies
// first.
func (r *Realm) permissions(member string, policies, plans, roles set, groups []string, direct set) []Permission {
	var out []Permission
	add := func(stmts []Statement, src Source) {
		for _, st := range stmts {
			for _, a := range st.Actions {
				for _, res := range st.Resources {
					out = append(out, Permission{Effect: st.Effect, Action: a, Resource: res, Source: src})
				}
			}
		}
	}
	// addPolicies adds realm policies (project nil) or those given to a
	// membership of project.
	addPolicies := func(project *Project, ids []string, src Source) {
		for _, pid := range ids {
			p := r.Policies[pid]
			if project != nil {
				p = r.MemberPolicy(project, pid)
			}
			if p != nil {
				src.ID = pid
				add(p.Statements, src)
			}
		}
	}
	addPlans := func(plans set, via string) {
		for _, plan := range plans.Sorted() {
			if pl := r.Plans[plan]; pl != nil {
				addPolicies(nil, pl.Policies, Source{Kind: SourcePolicy, Via: via, Plan: plan})
			}
		}
	}
	addPolicies(nil, policies.Sorted(), Source{Kind: SourcePolicy})
	addPlans(plans, "")
	for _, role := range roles.Sorted() {
		add(r.roleCache[role], Source{Kind: SourceRole, ID: role})
	}
	for _, g := range groups {
		if grp := r.Groups[g]; grp != nil {
			addPolicies(nil, grp.Policies.Sorted(), Source{Kind: SourcePolicy, Via: g})
			addPlans(grp.Plans, g)
		}
	}
	addManaged := func(manager, via string) {
		for _, m := range sortedRefs(r.manages[manager]) {
			src := Source{Kind: SourceManager, ID: string(m.Kind) + "/" + m.ID, Via: via}
			for _, a := range managerActions[m.Kind] {
				out = append(out, Permission{Effect: Allow, Action: a, Resource: m.HRN(r.ID), Source: src})
			}
		}
	}
	addShared := func(sharee, via string) {
		for _, app := range r.sharedWith[sharee].Sorted() {
			src := Source{Kind: SourceShare, ID: string(ManagedApp) + "/" + app, Via: via}
			for _, a := range shareeActions {
				out = append(out, Permission{Effect: Allow, Action: a, Resource: AppHRN(r.ID, app), Source: src})
			}
		}
	}
	addManaged(member, "")
	addShared(member, "")
	for _, g := range groups {
		addManaged(g, g)
		addShared(g, g)
	}
	projects := set{}
	for p := range direct.All() {
		projects.add(p)
	}
	for _, g := range groups {
		if grp := r.Groups[g]; grp != nil {
			for p := range grp.Projects.All() {
				projects.add(p)
			}
		}
	}
	for _, pid := range projects.Sorted() {
		p := r.Projects[pid]
		if pols, ok := p.Members[member]; ok {
			addPolicies(p, pols, Source{Kind: SourcePolicy, Project: pid})
		}
		for _, g := range groups {
			if pols, ok := p.Members[g]; ok {
				addPolicies(p, pols, Source{Kind: SourcePolicy, Project: pid, Via: g})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Effect == Deny && out[j].Effect != Deny })
	return out
}
