// Package iam is the domain of the iam service: realms, identities (users and
// apps), groups, roles, policies, projects and resources named by HRN; the
// commands that change them, the events those commands produce, and the
// evaluation of authorization checks.
//
// It is pure: it imports only the standard library, so every rule here is
// unit-testable without NATS or Pebble. Infrastructure packages (eventlog,
// projector, replica, api) talk to each other in the terms defined here.
//
// Files are cut by aggregate; each holds that aggregate's commands (with
// their validation and decision), its events and how each event applies:
//
//	realm.go       CreateRealm; RealmCreated
//	identity.go    users and apps: create (plain or sealed), status, delete,
//	               token revocation
//	app.go         an app's client credentials and API keys, their status; its default project
//	group.go       groups and their members
//	role.go        built-in roles, management actions; GrantRole, RevokeRole
//	policy.go      Statement, policies and their realm-wide attachments
//	project.go     projects, their members and their resources
//	projectpolicy.go  policies living in a project; its default member policies
//	plan.go        plans: named sets of realm policies, attached like a policy
//	manager.go     ownership: managers of apps, groups and projects (their
//	               creators first); AddManager, RemoveManager
//	share.go       sharing apps (ShareApp, UnshareApp), share as what linking
//	               needs, a resource's linkability (SetResourceLinkable)
//	signin.go      sign-in and lockout, authorization codes, passwords and
//	               their resets
//	refresh.go     refresh-token families: rotation, reuse detection, their end
//	invitation.go  invitations: create, renew, accept
//
// and the cross-cutting parts:
//
//	state.go   State, Realm and the entity structs, and the state's lookups
//	limits.go  Limits, the published limits Decide enforces; the count of
//	           permissions assigned to an identity or group
//	decide.go  Request, Command, Decide, Authorize; shared validation helpers
//	events.go  the Event interface, the one registry of event types, Commit,
//	           LogEntry and their codec
//	apply.go   ApplyEntry, ApplyEvents, Settle; Change and Touch, which tell
//	           what an applied event changed
//	eval.go    evaluation of checks (Check) and of permissions
//	hrn.go     HRNs and resource patterns
//	error.go   Error and its codes
//	redact.go  Redact, events without secrets or personal data
//
// The read model's durable form (row keys and values) is not the domain's:
// it is in package replica, which maps each Change to its row.
package iam
