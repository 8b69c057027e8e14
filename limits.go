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
		PermissionsPerPolicy:       100,
		CredentialsPerApp:          10,
		APIKeysPerApp:              10,
		StatementsPerPolicy:        100,
		AppsPerManager:             100,
		IdempotencyRetention:       24 * time.Hour,
		MaxIdempotencyKeysPerRealm: 100_000,
	}
}
