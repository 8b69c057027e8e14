package iam

// IdentityKind tells users from apps.
type IdentityKind string

const (
	KindUser IdentityKind = "user"
	KindApp  IdentityKind = "app"
)

// IdentityStatus is the lifecycle state of an identity.
type IdentityStatus string

const (
	StatusActive      IdentityStatus = "active"
	StatusDeactivated IdentityStatus = "deactivated"
)

// Relation is how a resource belongs to a project: created in it (home, one
// per resource) or linked into it from its home.
type Relation string

const (
	RelationHome Relation = "home"
	RelationLink Relation = "link"
)

// Effect of a policy statement.
type Effect string

const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// Statement allows or denies actions on resources. An action is a name or
// "*"; a resource is an exact HRN or an HRN prefix ending in "*".
type Statement struct {
	Effect    Effect   `json:"effect"`
	Actions   []string `json:"actions"`
	Resources []string `json:"resources"`
}
