package iam

import "sort"

// Management actions, evaluated like any other action against the HRN of the
// entity they act on (or the realm's HRN for creating and listing).
const (
	ActionCreateUser    = "createUser"
	ActionCreateApp     = "createApp"
	ActionCreateGroup   = "createGroup"
	ActionCreatePolicy  = "createPolicy"
	ActionCreateProject = "createProject"
	ActionManageUser    = "manageUser"
	ActionManageApp     = "manageApp"
	ActionManageGroup   = "manageGroup"
	ActionManageRoles   = "manageRoles"
	ActionManagePolicy  = "managePolicy"
	ActionManageProject = "manageProject"
	ActionRead          = "read"
	ActionList          = "list"
	ActionCheckAccess   = "checkAccess"
)

// Built-in roles: named bundles of permissions, as HERE IAM's roles are.
const (
	RoleOrgAdmin        = "OrgAdmin"
	RoleOrgInviter      = "OrgInviter"
	RoleResourceManager = "ResourceManager"
	RoleProjectAdmin    = "ProjectAdmin"
)

// RoleDefinition describes a role for GET /v1/roles.
type RoleDefinition struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Statements  []Statement `json:"statements"`
}

type roleTemplate struct {
	description string
	statements  func(realm string) []Statement
}

var roles = map[string]roleTemplate{
	RoleOrgAdmin: {"Manages everything in the realm: identities, groups, roles, policies and projects.", func(r string) []Statement {
		return []Statement{{Effect: Allow, Actions: []string{"*"}, Resources: []string{
			"hrn:here:account::" + r + ":*", "hrn:here:authorization::" + r + ":*"}}}
	}},
	RoleOrgInviter: {"Adds users to the realm and reads its identities.", func(r string) []Statement {
		return []Statement{
			{Effect: Allow, Actions: []string{ActionCreateUser, ActionList}, Resources: []string{RealmHRN(r)}},
			{Effect: Allow, Actions: []string{ActionRead}, Resources: []string{"hrn:here:account::" + r + ":user/*"}},
		}
	}},
	RoleResourceManager: {"Manages every app, group and project of the realm, including orphaned ones (by making itself a manager).", func(r string) []Statement {
		return []Statement{
			{Effect: Allow, Actions: []string{ActionCreateApp, ActionCreateProject, ActionList}, Resources: []string{RealmHRN(r)}},
			{Effect: Allow, Actions: []string{"*"}, Resources: []string{
				"hrn:here:account::" + r + ":app/*", "hrn:here:authorization::" + r + ":group/*",
				"hrn:here:authorization::" + r + ":project/*"}},
		}
	}},
	// As in HERE IAM, the role lets its holder create projects; each
	// creator then administers its own projects as their manager
	// (manager.go), and nobody's others.
	RoleProjectAdmin: {"Creates projects, and administers those it created or was made a manager of.", func(r string) []Statement {
		return []Statement{
			{Effect: Allow, Actions: []string{ActionCreateProject, ActionList}, Resources: []string{RealmHRN(r)}},
		}
	}},
}

// IsRole reports whether name is a built-in role.
func IsRole(name string) bool { _, ok := roles[name]; return ok }

// Roles lists the built-in roles of realm with their permissions, by name.
func Roles(realm string) []RoleDefinition {
	out := make([]RoleDefinition, 0, len(roles))
	for name, t := range roles {
		out = append(out, RoleDefinition{Name: name, Description: t.description, Statements: t.statements(realm)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// roleStatementsFor builds every role's statements for a realm once, when
// the realm is created, so that checks read them without allocating.
func roleStatementsFor(realm string) map[string][]Statement {
	m := make(map[string][]Statement, len(roles))
	for name, t := range roles {
		m[name] = t.statements(realm)
	}
	return m
}

// --- commands ------------------------------------------------------------------

// GrantRole gives an identity a built-in role.
type GrantRole struct{ Identity, Role string }

func (c GrantRole) permission(r *Realm) (string, string) {
	return ActionManageRoles, RealmHRN(r.ID)
}
func (c GrantRole) validate() error {
	if !IsRole(c.Role) {
		return FieldErrorf("role", "%q is not a role (see GET /v1/roles)", c.Role)
	}
	return nil
}
func (c GrantRole) decide(s *State, r *Realm) ([]Event, error) {
	id, err := r.identity("identityId", c.Identity)
	if err != nil || id.Roles.Has(c.Role) {
		return nil, err
	}
	if id.Roles.Len() >= s.Limits.RolesPerIdentity {
		return nil, limitErr("an identity has at most %d roles", s.Limits.RolesPerIdentity)
	}
	return []Event{RoleGranted{InRealm{r.ID}, c.Identity, c.Role}}, nil
}

// RevokeRole takes a role from an identity.
type RevokeRole struct{ Identity, Role string }

func (c RevokeRole) permission(r *Realm) (string, string) {
	return ActionManageRoles, RealmHRN(r.ID)
}
func (c RevokeRole) validate() error { return nil }
func (c RevokeRole) decide(s *State, r *Realm) ([]Event, error) {
	id, err := r.identity("identityId", c.Identity)
	if err != nil || !id.Roles.Has(c.Role) {
		return nil, err
	}
	return []Event{RoleRevoked{InRealm{r.ID}, c.Identity, c.Role}}, nil
}

// --- events --------------------------------------------------------------------

// RoleGranted gives an identity a built-in role.
type RoleGranted struct {
	InRealm
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

// RoleRevoked takes a role from an identity.
type RoleRevoked struct {
	InRealm
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

// EventType implements Event.
func (RoleGranted) EventType() string { return "RoleGranted" }

// EventType implements Event.
func (RoleRevoked) EventType() string { return "RoleRevoked" }

// --- apply ---------------------------------------------------------------------

func (e RoleGranted) apply(s *State, touch Touch) {
	s.realms[e.Realm].ownIdentity(e.Identity).Roles.add(e.Role)
	touch(Change{Kind: ChangeRole, Realm: e.Realm, From: e.Identity, To: e.Role, Edge: EdgeAdded})
}

func (e RoleRevoked) apply(s *State, touch Touch) {
	s.realms[e.Realm].ownIdentity(e.Identity).Roles.remove(e.Role)
	touch(Change{Kind: ChangeRole, Realm: e.Realm, From: e.Identity, To: e.Role, Edge: EdgeRemoved})
}
