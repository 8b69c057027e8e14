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
	RoleResourceManager: {"Manages every app and project of the realm, including orphaned ones.", func(r string) []Statement {
		return []Statement{
			{Effect: Allow, Actions: []string{ActionCreateApp, ActionCreateProject, ActionList}, Resources: []string{RealmHRN(r)}},
			{Effect: Allow, Actions: []string{"*"}, Resources: []string{
				"hrn:here:account::" + r + ":app/*", "hrn:here:authorization::" + r + ":project/*"}},
		}
	}},
	RoleProjectAdmin: {"Creates projects and manages their members and resources.", func(r string) []Statement {
		return []Statement{
			{Effect: Allow, Actions: []string{ActionCreateProject, ActionList}, Resources: []string{RealmHRN(r)}},
			{Effect: Allow, Actions: []string{"*"}, Resources: []string{"hrn:here:authorization::" + r + ":project/*"}},
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
