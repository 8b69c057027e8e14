package iam

// Projects: their members (identities and groups, each with project
// policies) and the resources they hold, at home or linked from elsewhere.

// Relation is how a resource belongs to a project: created in it (home, one
// per resource) or linked into it from its home.
type Relation string

// Relations of a resource to a project.
const (
	RelationHome Relation = "home"
	RelationLink Relation = "link"
)

// --- commands ------------------------------------------------------------------

// CreateProject adds a project; Creator becomes its first Project Admin, of
// this project only (Decide sets it to the actor).
type CreateProject struct{ ID, Name, Creator string }

func (c CreateProject) createdBy(actor string) Command { c.Creator = actor; return c }

func (c CreateProject) permission(r *Realm) (string, string) {
	return ActionCreateProject, RealmHRN(r.ID)
}
func (c CreateProject) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if len(c.ID) < 4 || len(c.ID) > 16 {
		return FieldErrorf("id", "a project id has 4 to 16 characters")
	}
	return ValidID("id", c.ID)
}
func (c CreateProject) decide(s *State, r *Realm) ([]Event, error) {
	if r.Projects[c.ID] != nil {
		return nil, Errorf(EConflict, "project %s already exists", c.ID)
	}
	first, err := r.firstManager(s, ManagedRef{ManagedProject, c.ID}, c.Creator)
	if err != nil {
		return nil, err
	}
	return append([]Event{ProjectCreated{InRealm{r.ID}, c.ID, c.Name}}, first...), nil
}

// SetProjectMember makes an identity or a group a member of a project with
// exactly the given policies.
type SetProjectMember struct {
	Project  string
	Member   string
	Policies []string
}

func (c SetProjectMember) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c SetProjectMember) validate() error {
	return validMemberPolicies("policies", c.Policies)
}
func (c SetProjectMember) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	old, isMember := p.Members[c.Member]
	if !isMember && len(c.Policies) == 0 {
		c.Policies = p.DefaultMemberPolicies // a member added without policies gets the project's defaults
	}
	given, err := r.memberPolicies(p, "policies", c.Policies)
	if err != nil {
		return nil, err
	}
	if len(c.Policies) > s.Limits.PoliciesPerProjectMember {
		return nil, limitErr("a project member has at most %d project policies", s.Limits.PoliciesPerProjectMember)
	}
	if g := r.Groups[c.Member]; g != nil {
		if !isMember && p.groups >= s.Limits.GroupsPerProject {
			return nil, limitErr("a project has at most %d groups as members", s.Limits.GroupsPerProject)
		}
		if !isMember && g.Projects.Len() >= s.Limits.ProjectsPerIdentity {
			return nil, limitErr("a group is a direct member of at most %d projects", s.Limits.ProjectsPerIdentity)
		}
	} else {
		id, err := r.identity("identityOrGroupId", c.Member)
		if err != nil {
			return nil, &Error{Code: ENotFound, Field: "identityOrGroupId", Message: "no identity or group " + c.Member}
		}
		if !isMember && len(p.Members)-p.groups >= s.Limits.IdentitiesPerProject {
			return nil, limitErr("a project has at most %d users and apps as members", s.Limits.IdentitiesPerProject)
		}
		if !isMember && id.Projects.Len() >= s.Limits.ProjectsPerIdentity {
			return nil, limitErr("an identity is a direct member of at most %d projects", s.Limits.ProjectsPerIdentity)
		}
	}
	if isMember && equalStrings(old, c.Policies) {
		return nil, nil
	}
	// The old policies all resolve: a deleted project policy leaves every
	// assignment with it (ProjectPolicyDeleted).
	taken, _ := r.memberPolicies(p, "", old)
	if err := r.checkPermissions(s, c.Member, countPermissions(given...)-countPermissions(taken...)); err != nil {
		return nil, err
	}
	pols := c.Policies
	if pols == nil {
		pols = []string{}
	}
	return []Event{ProjectMemberSet{InRealm{r.ID}, c.Project, c.Member, pols}}, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// RemoveProjectMember takes an identity or a group out of a project.
type RemoveProjectMember struct{ Project, Member string }

func (c RemoveProjectMember) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c RemoveProjectMember) validate() error { return nil }
func (c RemoveProjectMember) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	if _, ok := p.Members[c.Member]; !ok {
		return nil, nil
	}
	return []Event{ProjectMemberRemoved{InRealm{r.ID}, c.Project, c.Member}}, nil
}

// AddProjectResource puts a resource into a project: as its one home, or as
// a link from its home into another project. Beyond managing the project,
// a link needs share on the resource where it lives (mayShareFrom), and the
// resource linkable. Errors: not_found (project), permission_denied (share),
// invalid_argument, conflict (already placed, home elsewhere, not
// linkable), limit_exceeded.
type AddProjectResource struct {
	Project  string
	HRN      string
	Relation Relation
	actor    string // "" for the system, whose links are not judged
}

func (c AddProjectResource) by(actor string) Command { c.actor = actor; return c }

func (c AddProjectResource) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c AddProjectResource) validate() error {
	if c.Relation != RelationHome && c.Relation != RelationLink {
		return FieldErrorf("relation", "must be %q or %q", RelationHome, RelationLink)
	}
	h, err := ParseHRN("hrn", c.HRN)
	if err != nil {
		return err
	}
	if h.Service == "account" || h.Service == "authorization" {
		return FieldErrorf("hrn", "%q is an IAM entity: projects hold service resources only", c.HRN)
	}
	return nil
}
func (c AddProjectResource) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	if rel, ok := p.Resources[c.HRN]; ok {
		if rel == c.Relation {
			return nil, nil
		}
		return nil, Errorf(EConflict, "%s is already in project %s as %s", c.HRN, c.Project, rel)
	}
	if len(p.Resources) >= s.Limits.ResourcesPerProject {
		return nil, limitErr("a project holds at most %d resources", s.Limits.ResourcesPerProject)
	}
	pl := r.Resources[c.HRN]
	switch c.Relation {
	case RelationHome:
		// Placements are of this realm only, so the project named is the
		// caller's realm's: nothing of another realm is told.
		if pl != nil && pl.Home != "" {
			return nil, &Error{Code: EConflict, Field: "relation", Message: c.HRN + " already has its home in project " + pl.Home +
				": link it from there (relation link), with share on it"}
		}
		if pl != nil {
			return nil, &Error{Code: EConflict, Field: "relation", Message: c.HRN + " is linked from outside projects into project " +
				pl.Links.Sorted()[0] + ": a resource the realm shares is not taken home by one project"}
		}
	case RelationLink:
		if c.actor != "" {
			if ok, why := s.mayShareFrom(r, c.actor, c.HRN, pl); !ok {
				return nil, &Error{Code: EPermissionDenied, Field: "hrn", Message: "permission share on " + c.HRN + " is missing: " + why}
			}
		}
		if pl != nil && pl.NotLinkable {
			return nil, &Error{Code: EConflict, Field: "hrn", Message: c.HRN + " is marked not linkable by its home project " + pl.Home}
		}
		if pl != nil && pl.Links.Len() >= s.Limits.LinksPerResource {
			return nil, limitErr("a resource is linked into at most %d projects", s.Limits.LinksPerResource)
		}
	}
	return []Event{ProjectResourceAdded{InRealm{r.ID}, c.Project, c.HRN, c.Relation}}, nil
}

// RemoveProjectResource takes a resource out of a project; a home with links
// left must be unlinked first.
type RemoveProjectResource struct{ Project, HRN string }

func (c RemoveProjectResource) permission(r *Realm) (string, string) {
	return ActionManageProject, ProjectHRN(r.ID, c.Project)
}
func (c RemoveProjectResource) validate() error {
	_, err := ParseHRN("hrn", c.HRN)
	return err
}
func (c RemoveProjectResource) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	rel, ok := p.Resources[c.HRN]
	if !ok {
		return nil, nil
	}
	if pl := r.Resources[c.HRN]; rel == RelationHome && pl != nil && pl.Links.Len() > 0 {
		return nil, Errorf(EConflict, "%s is still linked into %d projects: unlink it first", c.HRN, pl.Links.Len())
	}
	return []Event{ProjectResourceRemoved{InRealm{r.ID}, c.Project, c.HRN}}, nil
}

// --- events --------------------------------------------------------------------

// ProjectCreated creates a project.
type ProjectCreated struct {
	InRealm
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ProjectMemberSet makes an identity or a group a member of a project with
// exactly the given policies (replacing any it had).
type ProjectMemberSet struct {
	InRealm
	Project  string   `json:"project"`
	Member   string   `json:"member"`
	Policies []string `json:"policies"`
}

// ProjectMemberRemoved takes an identity or a group out of a project.
type ProjectMemberRemoved struct {
	InRealm
	Project string `json:"project"`
	Member  string `json:"member"`
}

// ProjectResourceAdded puts a resource into a project.
type ProjectResourceAdded struct {
	InRealm
	Project  string   `json:"project"`
	HRN      string   `json:"hrn"`
	Relation Relation `json:"relation"`
}

// ProjectResourceRemoved takes a resource out of a project.
type ProjectResourceRemoved struct {
	InRealm
	Project string `json:"project"`
	HRN     string `json:"hrn"`
}

// EventType implements Event.
func (ProjectCreated) EventType() string { return "ProjectCreated" }

// EventType implements Event.
func (ProjectMemberSet) EventType() string { return "ProjectMemberSet" }

// EventType implements Event.
func (ProjectMemberRemoved) EventType() string { return "ProjectMemberRemoved" }

// EventType implements Event.
func (ProjectResourceAdded) EventType() string { return "ProjectResourceAdded" }

// EventType implements Event.
func (ProjectResourceRemoved) EventType() string { return "ProjectResourceRemoved" }

// --- apply ---------------------------------------------------------------------

func (e ProjectCreated) apply(s *State, touch Touch) {
	s.realms[e.Realm].Projects[e.ID] = &Project{ID: e.ID, Name: e.Name, Members: map[string][]string{}, Resources: map[string]Relation{}, gen: s.realms[e.Realm].gen}
	touch(Change{Kind: ChangeProject, Realm: e.Realm, From: e.ID})
}

func (e ProjectMemberSet) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	p := r.ownProject(e.Project)
	old, had := p.Members[e.Member]
	p.Members[e.Member] = append([]string(nil), e.Policies...)
	if had {
		r.unusePolicies(p.ID, old)
	} else if g := r.ownGroup(e.Member); g != nil {
		g.Projects.add(p.ID)
		p.groups++
	} else {
		r.ownIdentity(e.Member).Projects.add(p.ID)
	}
	for _, pol := range e.Policies {
		if rp := r.ownPolicy(pol); rp != nil { // a project policy HRN is no realm policy
			rp.InProjects.own(rp.gen).add(p.ID)
		}
	}
	touch(Change{Kind: ChangeProjectMember, Realm: e.Realm, From: e.Project, To: e.Member})
}

func (e ProjectMemberRemoved) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	p := r.ownProject(e.Project)
	old := p.Members[e.Member]
	delete(p.Members, e.Member)
	r.unusePolicies(p.ID, old)
	if g := r.ownGroup(e.Member); g != nil {
		g.Projects.remove(p.ID)
		p.groups--
	} else if id := r.ownIdentity(e.Member); id != nil {
		id.Projects.remove(p.ID)
	}
	touch(Change{Kind: ChangeProjectMember, Realm: e.Realm, From: e.Project, To: e.Member})
}

// unusePolicies forgets that project uses policies, unless a member of the
// project (as it is now) still uses them.
func (r *Realm) unusePolicies(project string, policies []string) {
	p := r.Projects[project]
	for _, pol := range policies {
		still := false
		for _, other := range p.Members {
			for _, o := range other {
				still = still || o == pol
			}
		}
		if !still {
			if rp := r.ownPolicy(pol); rp != nil {
				rp.InProjects.own(rp.gen).remove(project)
			}
		}
	}
}

func (e ProjectResourceAdded) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	r.ownProject(e.Project).Resources[e.HRN] = e.Relation
	pl := r.ownResource(e.HRN)
	if pl == nil {
		pl = &ResourcePlacement{Links: set{}, gen: r.gen}
		r.Resources[e.HRN] = pl
	}
	if e.Relation == RelationHome {
		pl.Home = e.Project
	} else {
		pl.Links.add(e.Project)
	}
	touch(Change{Kind: ChangeProjectResource, Realm: e.Realm, From: e.Project, To: e.HRN})
}

func (e ProjectResourceRemoved) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	delete(r.ownProject(e.Project).Resources, e.HRN)
	if pl := r.ownResource(e.HRN); pl != nil {
		if pl.Home == e.Project {
			pl.Home = ""
			// Not linkable is the home's word: it goes with the home.
			if pl.NotLinkable {
				pl.NotLinkable = false
				touch(Change{Kind: ChangeResourceNotLinkable, Realm: e.Realm, From: e.Project, To: e.HRN})
			}
		}
		pl.Links.remove(e.Project)
		if pl.Home == "" && pl.Links.Len() == 0 {
			delete(r.Resources, e.HRN)
		}
	}
	touch(Change{Kind: ChangeProjectResource, Realm: e.Realm, From: e.Project, To: e.HRN})
}
