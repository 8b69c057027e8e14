package iam

import (
	"strconv"
	"strings"
)

// Project policies (issue 10, item 3): policies that live in one project,
// name only that project's resources and are given only to its members. A
// member assignment names one by its HRN, so that a realm policy id and a
// project policy id never collide and a policy of another project is told
// apart (400) from an unknown one. Their evaluation is the membership's
// (eval.go): they reach resources only through a check scoped to the project.

// ProjectPolicyHRN is the HRN of policy id living in project.
func ProjectPolicyHRN(realm, project, id string) string {
	return ProjectHRN(realm, project) + ":policy/" + id
}

// splitProjectPolicyHRN returns the project and policy ids of a project
// policy HRN of realm; ok is false for anything else.
func splitProjectPolicyHRN(realm, s string) (project, id string, ok bool) {
	rest, ok := strings.CutPrefix(s, ProjectHRN(realm, ""))
	if !ok {
		return "", "", false
	}
	project, id, ok = strings.Cut(rest, ":policy/")
	if !ok || ValidID("", project) != nil || ValidID("", id) != nil {
		return "", "", false
	}
	return project, id, true
}

// validMemberPolicies judges the policies of a member assignment alone: each
// a realm policy id or a project policy HRN, none twice.
func validMemberPolicies(field string, pols []string) error {
	seen := set{}
	for i, p := range pols {
		f := field + "[" + strconv.Itoa(i) + "]"
		if strings.HasPrefix(p, "hrn:") {
			if _, err := ParseHRN(f, p); err != nil {
				return err
			}
		} else if err := ValidID(f, p); err != nil {
			return err
		}
		if seen.Has(p) {
			return FieldErrorf(f, "policy %s is listed twice", p)
		}
		seen.add(p)
	}
	return nil
}

// memberPolicy resolves one policy of a member assignment in project p: a
// realm policy by id, or p's own policy by HRN. A policy of another project
// is invalid_argument (it is never given here); an unknown one not_found.
func (r *Realm) memberPolicy(p *Project, field, entry string) (*Policy, error) {
	if !strings.HasPrefix(entry, "hrn:") {
		return r.policy(field, entry)
	}
	project, id, ok := splitProjectPolicyHRN(r.ID, entry)
	if !ok {
		return nil, FieldErrorf(field, "%q is neither a policy id nor a project policy HRN (%s)", entry, ProjectPolicyHRN(r.ID, "<project>", "<id>"))
	}
	if project != p.ID {
		return nil, FieldErrorf(field, "%s is a policy of project %s: it is given only to members of that project", entry, project)
	}
	if pol := p.Policies[id]; pol != nil {
		return pol, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "project policy " + entry + " not found"}
}

// MemberPolicy returns the policy an entry of a member assignment of project
// p names (a realm policy id or p's own policy HRN), or nil.
func (r *Realm) MemberPolicy(p *Project, entry string) *Policy {
	pol, err := r.memberPolicy(p, "", entry)
	if err != nil {
		return nil
	}
	return pol
}

// memberPolicies resolves every policy of an assignment (see memberPolicy).
func (r *Realm) memberPolicies(p *Project, field string, pols []string) ([]*Policy, error) {
	out := make([]*Policy, 0, len(pols))
	for i, entry := range pols {
		pol, err := r.memberPolicy(p, field+"["+strconv.Itoa(i)+"]", entry)
		if err != nil {
			return nil, err
		}
		out = append(out, pol)
	}
	return out, nil
}

// --- commands ------------------------------------------------------------------

// CreateProjectPolicy adds a policy living in a project. Each resource of
// its statements is an exact HRN of a resource in the project (home or
// linked) when it is created: a prefix pattern is refused, as it could name
// resources outside the project.
type CreateProjectPolicy struct {
	Project    string
	ID         string
	Name       string
	Statements []Statement
}

func (c CreateProjectPolicy) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}

func (c CreateProjectPolicy) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if err := validStatements(c.Statements); err != nil {
		return err
	}
	for i, st := range c.Statements {
		for j, res := range st.Resources {
			if strings.HasSuffix(res, "*") {
				return FieldErrorf("statements["+strconv.Itoa(i)+"].resources["+strconv.Itoa(j)+"]",
					"a project policy names its project's resources exactly: the pattern %q could reach resources outside the project", res)
			}
		}
	}
	return ValidID("id", c.ID)
}

func (c CreateProjectPolicy) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	if err := checkStatements(s, r, c.Statements); err != nil {
		return nil, err
	}
	for i, st := range c.Statements {
		for j, res := range st.Resources {
			if _, ok := p.Resources[res]; !ok {
				return nil, FieldErrorf("statements["+strconv.Itoa(i)+"].resources["+strconv.Itoa(j)+"]",
					"%s is not a resource of project %s (home or linked)", res, c.Project)
			}
		}
	}
	if p.Policies[c.ID] != nil {
		return nil, Errorf(EConflict, "project %s already has policy %s", c.Project, c.ID)
	}
	if len(p.Policies) >= s.Limits.PoliciesPerProject {
		return nil, limitErr("a project has at most %d project policies", s.Limits.PoliciesPerProject)
	}
	return []Event{ProjectPolicyCreated{InRealm{r.ID}, c.Project, c.ID, c.Name, c.Statements}}, nil
}

// DeleteProjectPolicy removes a project policy, and with it every member
// assignment and default that gives it.
type DeleteProjectPolicy struct{ Project, ID string }

func (c DeleteProjectPolicy) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c DeleteProjectPolicy) validate() error { return nil }
func (c DeleteProjectPolicy) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	if p.Policies[c.ID] == nil {
		return nil, &Error{Code: ENotFound, Field: "policyId", Message: "project " + c.Project + " has no policy " + c.ID}
	}
	return []Event{ProjectPolicyDeleted{InRealm{r.ID}, c.Project, c.ID}}, nil
}

// SetProjectDefaults sets the policies given to a member added to the
// project without policies (realm policy ids or this project's policy HRNs).
type SetProjectDefaults struct {
	Project               string
	DefaultMemberPolicies []string
}

func (c SetProjectDefaults) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c SetProjectDefaults) validate() error {
	return validMemberPolicies("defaultMemberPolicies", c.DefaultMemberPolicies)
}
func (c SetProjectDefaults) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	if _, err := r.memberPolicies(p, "defaultMemberPolicies", c.DefaultMemberPolicies); err != nil {
		return nil, err
	}
	if len(c.DefaultMemberPolicies) > s.Limits.PoliciesPerProjectMember {
		return nil, limitErr("a project member has at most %d project policies", s.Limits.PoliciesPerProjectMember)
	}
	if equalStrings(p.DefaultMemberPolicies, c.DefaultMemberPolicies) {
		return nil, nil
	}
	return []Event{ProjectDefaultsSet{InRealm{r.ID}, c.Project, c.DefaultMemberPolicies}}, nil
}

// --- events --------------------------------------------------------------------

// ProjectPolicyCreated creates a policy living in a project.
type ProjectPolicyCreated struct {
	InRealm
	Project    string      `json:"project"`
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
}

// ProjectPolicyDeleted removes a project policy and every use of it in the
// project's member assignments and defaults.
type ProjectPolicyDeleted struct {
	InRealm
	Project string `json:"project"`
	ID      string `json:"id"`
}

// ProjectDefaultsSet sets a project's default member policies.
type ProjectDefaultsSet struct {
	InRealm
	Project  string   `json:"project"`
	Policies []string `json:"policies"`
}

// EventType implements Event.
func (ProjectPolicyCreated) EventType() string { return "ProjectPolicyCreated" }

// EventType implements Event.
func (ProjectPolicyDeleted) EventType() string { return "ProjectPolicyDeleted" }

// EventType implements Event.
func (ProjectDefaultsSet) EventType() string { return "ProjectDefaultsSet" }

// --- apply ---------------------------------------------------------------------

func (e ProjectPolicyCreated) apply(s *State, touch Touch) {
	p := s.realms[e.Realm].ownProject(e.Project)
	if p.Policies == nil {
		p.Policies = map[string]*Policy{}
	}
	// No AttachedTo or InProjects: a project policy is never attached
	// realm-wide, and lives in one project.
	p.Policies[e.ID] = &Policy{ID: e.ID, Name: e.Name, Statements: cloneStatements(e.Statements), num: names.intern(e.ID)}
	touch(Change{Kind: ChangeProjectPolicy, Realm: e.Realm, From: e.Project, To: e.ID})
}

func (e ProjectPolicyDeleted) apply(s *State, touch Touch) {
	p := s.realms[e.Realm].ownProject(e.Project)
	delete(p.Policies, e.ID)
	if len(p.Policies) == 0 {
		p.Policies = nil // as a project that never had one, and as loaded from rows
	}
	hrn := ProjectPolicyHRN(e.Realm, e.Project, e.ID)
	without := func(pols []string) ([]string, bool) {
		var out []string // nil when empty, as ProjectMemberSet leaves it
		for _, x := range pols {
			if x != hrn {
				out = append(out, x)
			}
		}
		return out, len(out) != len(pols)
	}
	for _, m := range sortedKeys(p.Members) {
		if kept, changed := without(p.Members[m]); changed {
			p.Members[m] = kept
			touch(Change{Kind: ChangeProjectMember, Realm: e.Realm, From: e.Project, To: m})
		}
	}
	if kept, changed := without(p.DefaultMemberPolicies); changed {
		p.DefaultMemberPolicies = kept
		touch(Change{Kind: ChangeProjectDefaults, Realm: e.Realm, From: e.Project})
	}
	touch(Change{Kind: ChangeProjectPolicy, Realm: e.Realm, From: e.Project, To: e.ID})
}

func (e ProjectDefaultsSet) apply(s *State, touch Touch) {
	s.realms[e.Realm].ownProject(e.Project).DefaultMemberPolicies = append([]string(nil), e.Policies...)
	touch(Change{Kind: ChangeProjectDefaults, Realm: e.Realm, From: e.Project})
}
