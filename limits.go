package iam

import "time"

// Limits are HERE IAM's published limits. Decide enforces them; each
// violation is a limit_exceeded error naming the limit.
type Limits struct {
	RolesPerIdentity           int
	MembersPerGroup            int
	GroupsPerIdentity          int
	ProjectsPerIdentity        int // direct project memberships of a user, app or group
	IdentitiesPerProject       int // users and apps
	GroupsPerProject           int
	ResourcesPerProject        int
	LinksPerResource           int
	PoliciesPerProjectMember   int
	PoliciesPerProject         int // project policies living in one project
	PermissionsPerIdentity     int // assigned to one identity or group: see assignedPermissions
	PermissionsPerPolicy       int
	CredentialsPerApp          int
	APIKeysPerApp              int
	StatementsPerPolicy        int
	AppsPerManager             int // apps a user manages directly
	IdempotencyRetention       time.Duration
	MaxIdempotencyKeysPerRealm int
}

// DefaultLimits returns HERE IAM's limits.
func DefaultLimits() Limits {
	return Limits{
		RolesPerIdentity:           100,
		MembersPerGroup:            500,
		GroupsPerIdentity:          50,
		ProjectsPerIdentity:        50,
		IdentitiesPerProject:       500,
		GroupsPerProject:           5,
		ResourcesPerProject:        100,
		LinksPerResource:           5,
		PoliciesPerProjectMember:   5,
		PoliciesPerProject:         5,
		PermissionsPerIdentity:     100_000,
		PermissionsPerPolicy:       100,
		CredentialsPerApp:          10,
		APIKeysPerApp:              10,
		StatementsPerPolicy:        100,
		AppsPerManager:             100,
		IdempotencyRetention:       24 * time.Hour,
		MaxIdempotencyKeysPerRealm: 100_000,
	}
}

// countPermissions counts the permissions of policies as HERE IAM counts
// them: a permission is one action allowed or denied on one resource, so a
// statement holds actions × resources of them (as GET …/permissions lists
// them, one row each).
func countPermissions(pols ...*Policy) int {
	n := 0
	for _, p := range pols {
		for _, st := range p.Statements {
			n += len(st.Actions) * len(st.Resources)
		}
	}
	return n
}

// assignedPermissions counts the permissions assigned to one identity or
// group directly: its realm policies, the policies of its plans and its
// policies in each project it is a direct member of. What reaches it through
// a group counts for the group, as HERE counts per user, app or group; the
// built-in roles are bounded by RolesPerIdentity instead.
func (r *Realm) assignedPermissions(target string) int {
	var policies, plans, projects set
	if g := r.Groups[target]; g != nil {
		policies, plans, projects = g.Policies, g.Plans, g.Projects
	} else if id := r.Identities.Get(target); id != nil {
		policies, plans, projects = id.Policies, id.Plans, id.Projects
	}
	n := 0
	for pid := range policies.All() {
		if p := r.Policies[pid]; p != nil {
			n += countPermissions(p)
		}
	}
	for plan := range plans.All() {
		n += r.planPermissions(r.Plans[plan])
	}
	for pid := range projects.All() {
		p := r.Projects[pid]
		pols, _ := r.memberPolicies(p, "", p.Members[target])
		n += countPermissions(pols...)
	}
	return n
}

// checkPermissions returns limit_exceeded when giving target delta more
// permissions would take it past PermissionsPerIdentity.
func (r *Realm) checkPermissions(s *State, target string, delta int) error {
	if delta <= 0 {
		return nil
	}
	if n := r.assignedPermissions(target) + delta; n > s.Limits.PermissionsPerIdentity {
		return limitErr("an identity or group is assigned at most %d permissions (actions × resources of its policies, plans and project policies), %s would have %d",
			s.Limits.PermissionsPerIdentity, target, n)
	}
	return nil
}
