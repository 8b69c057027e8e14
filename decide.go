package iam

import (
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Request is a command with its context: the realm it acts on, the identity
// asking (Actor; "" is the system itself, e.g. bootstrap) and the client's
// idempotency key with a hash of its request.
type Request struct {
	Realm          string
	Actor          string
	IdempotencyKey string
	RequestHash    string
	At             time.Time
	Command        Command
}

// Command is a request to change the state. Ids of created entities are
// chosen by the caller, so that re-deciding a command after a conflict
// creates the same entity.
type Command interface {
	// permission names the action and the HRN the actor must be allowed.
	permission(r *Realm) (action, hrn string)
	// validate judges the input alone.
	validate() error
	// decide judges the command against the realm and returns its events.
	decide(s *State, r *Realm) ([]Event, error)
}

// Decide validates req against s and returns the events that carry it out:
// none when the change is already in place. Errors: not_found (realm or an
// entity), permission_denied (actor lacks the command's permission, judged
// before its input), invalid_argument, conflict, limit_exceeded.
func Decide(s *State, req Request) ([]Event, error) {
	if c, ok := req.Command.(CreateRealm); ok {
		if req.Actor != "" {
			return nil, Errorf(EPermissionDenied, "realms are created by the system only")
		}
		if err := c.validate(); err != nil {
			return nil, err
		}
		if req.Realm != "" && c.ID != req.Realm {
			return nil, FieldErrorf("realm", "a realm is created by a request for that realm")
		}
		if s.realms[c.ID] != nil {
			return nil, Errorf(EConflict, "realm %s already exists", c.ID)
		}
		return []Event{RealmCreated{InRealm{c.ID}, c.Name}}, nil
	}
	r := s.realms[req.Realm]
	if r == nil {
		return nil, Errorf(ENotFound, "realm %s not found", req.Realm)
	}
	if c, ok := req.Command.(SetIdentityStatus); ok {
		c.bySelf = req.Actor != "" && req.Actor == c.ID
		req.Command = c
	}
	if req.Actor != "" && !selfService(req.Actor, req.Command) {
		if err := Authorize(s, req.Realm, req.Actor, req.Command); err != nil {
			return nil, err
		}
	}
	if err := req.Command.validate(); err != nil {
		return nil, err
	}
	return req.Command.decide(s, r)
}

// Authorize returns nil when actor may perform cmd in realm, judged by the
// same evaluation as a check, and a permission_denied error naming the
// missing permission otherwise.
func Authorize(s *State, realm, actor string, cmd Command) error {
	r := s.realms[realm]
	if r == nil {
		return Errorf(ENotFound, "realm %s not found", realm)
	}
	action, hrn := cmd.permission(r)
	return AuthorizeAction(s, realm, actor, action, hrn)
}

// AuthorizeRequest is Authorize for a whole request: it also lets a user
// deactivate itself, which needs no permission (HERE IAM's self-service).
func AuthorizeRequest(s *State, realm, actor string, cmd Command) error {
	if selfService(actor, cmd) {
		return nil
	}
	return Authorize(s, realm, actor, cmd)
}

// selfService reports whether cmd is one an identity may do to itself.
func selfService(actor string, cmd Command) bool {
	c, ok := cmd.(SetIdentityStatus)
	return ok && actor != "" && c.ID == actor && c.Status == StatusDeactivated
}

// AuthorizeAction is Authorize for an action named directly (reads, checks
// of other subjects).
func AuthorizeAction(s *State, realm, actor, action, hrn string) error {
	d := s.Check(CheckRequest{Realm: realm, Subject: actor, Action: action, Resource: hrn})
	if !d.Allowed {
		return Errorf(EPermissionDenied, "permission %s on %s is missing: %s", action, hrn, d.Reason)
	}
	return nil
}

// --- validation helpers -------------------------------------------------

// MaxNameLength bounds display names.
const MaxNameLength = 256

func validName(field, s string) error {
	if s == "" || strings.TrimSpace(s) == "" {
		return FieldErrorf(field, "must not be empty")
	}
	if utf8.RuneCountInString(s) > MaxNameLength || !utf8.ValidString(s) {
		return FieldErrorf(field, "must be valid UTF-8 of at most %d characters", MaxNameLength)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return FieldErrorf(field, "must not contain control characters")
		}
	}
	return nil
}

// ValidID checks an entity id as it may appear in a path or a key.
func ValidID(field, s string) error {
	if s == "" || len(s) > 64 {
		return FieldErrorf(field, "must be an id of 1 to 64 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return FieldErrorf(field, "%q is not a valid id", s)
		}
	}
	return nil
}

func limitErr(format string, args ...any) error {
	return Errorf(ELimitExceeded, "limit exceeded: "+format, args...)
}

func (r *Realm) identity(field, id string) (*Identity, error) {
	if i := r.Identities[id]; i != nil && i.Status != StatusDeleted {
		return i, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "identity " + id + " not found"}
}

func (r *Realm) app(field, id string) (*Identity, error) {
	i, err := r.identity(field, id)
	if err == nil && i.Kind != KindApp {
		return nil, &Error{Code: ENotFound, Field: field, Message: "app " + id + " not found"}
	}
	return i, err
}

func (r *Realm) user(field, id string) (*Identity, error) {
	i, err := r.identity(field, id)
	if err == nil && i.Kind != KindUser {
		return nil, &Error{Code: ENotFound, Field: field, Message: "user " + id + " not found"}
	}
	return i, err
}

func (r *Realm) group(field, id string) (*Group, error) {
	if g := r.Groups[id]; g != nil {
		return g, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "group " + id + " not found"}
}

func (r *Realm) policy(field, id string) (*Policy, error) {
	if p := r.Policies[id]; p != nil {
		return p, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "policy " + id + " not found"}
}

func (r *Realm) project(field, id string) (*Project, error) {
	if p := r.Projects[id]; p != nil {
		return p, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "project " + id + " not found"}
}

// IdentityHRN is the HRN of identity id of realm: an app's or a user's.
func (s *State) IdentityHRN(realm, id string) string {
	if r := s.realms[realm]; r != nil {
		return r.identityHRN(id)
	}
	return UserHRN(realm, id)
}

func (r *Realm) identityHRN(id string) string {
	if i := r.Identities[id]; i != nil && i.Kind == KindApp {
		return AppHRN(r.ID, id)
	}
	return UserHRN(r.ID, id)
}

// --- realms -----------------------------------------------------------------

// CreateRealm creates a realm; only the system may.
type CreateRealm struct {
	ID   string
	Name string
}

func (c CreateRealm) permission(*Realm) (string, string) { return "", "" }
func (c CreateRealm) validate() error {
	if err := ValidID("realm", c.ID); err != nil {
		return err
	}
	return validName("name", c.Name)
}
func (c CreateRealm) decide(*State, *Realm) ([]Event, error) { return nil, nil }

// --- identities -------------------------------------------------------------

// CreateUser adds a user. PasswordHash, if any, is argon2id already.
type CreateUser struct {
	ID           string
	Email        string
	Name         string
	PasswordHash string
}

func (c CreateUser) permission(r *Realm) (string, string) {
	return ActionCreateUser, RealmHRN(r.ID)
}
func (c CreateUser) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if len(c.Email) > 254 {
		return FieldErrorf("email", "must be at most 254 characters")
	}
	if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
		return FieldErrorf("email", "%q is not an email address", c.Email)
	}
	return ValidID("id", c.ID)
}
func (c CreateUser) decide(s *State, r *Realm) ([]Event, error) {
	if r.Identities[c.ID] != nil || r.Groups[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	if other := r.emails[strings.ToLower(c.Email)]; other != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	return []Event{IdentityCreated{InRealm: InRealm{r.ID}, ID: c.ID, Kind: KindUser, Email: c.Email, Name: c.Name, PasswordHash: c.PasswordHash}}, nil
}

// CreateApp adds an app. RedirectURIs are matched exactly in the
// authorization-code flow.
type CreateApp struct {
	ID           string
	Name         string
	RedirectURIs []string
	Owner        string
}

func (c CreateApp) permission(r *Realm) (string, string) { return ActionCreateApp, RealmHRN(r.ID) }
func (c CreateApp) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if len(c.RedirectURIs) > 10 {
		return FieldErrorf("redirectUris", "at most 10 redirect URIs")
	}
	for _, u := range c.RedirectURIs {
		if err := validRedirectURI(u); err != nil {
			return err
		}
	}
	return ValidID("id", c.ID)
}
func (c CreateApp) decide(s *State, r *Realm) ([]Event, error) {
	if r.Identities[c.ID] != nil || r.Groups[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	return []Event{IdentityCreated{InRealm: InRealm{r.ID}, ID: c.ID, Kind: KindApp, Name: c.Name, RedirectURIs: c.RedirectURIs, Owner: c.Owner}}, nil
}

func validRedirectURI(u string) error {
	switch {
	case len(u) > 2048:
		return FieldErrorf("redirectUris", "a redirect URI is longer than 2048 bytes")
	case strings.ContainsAny(u, "#\x00 \t\r\n"):
		return FieldErrorf("redirectUris", "%q must not contain a fragment or white space", u)
	case strings.HasPrefix(u, "https://") && len(u) > len("https://"):
		return nil
	case strings.HasPrefix(u, "http://127.0.0.1"), strings.HasPrefix(u, "http://[::1]"), strings.HasPrefix(u, "http://localhost"):
		return nil // loopback redirects, as RFC 8252 §7.3 allows for native apps
	}
	return FieldErrorf("redirectUris", "%q must be an https URI or a loopback http URI", u)
}

// SetIdentityStatus deactivates or reactivates a user or an app.
type SetIdentityStatus struct {
	ID     string
	Status IdentityStatus
	bySelf bool // set by Decide: the identity acts on itself
}

func (c SetIdentityStatus) permission(r *Realm) (string, string) {
	return ActionManageUser, r.identityHRN(c.ID)
}
func (c SetIdentityStatus) validate() error {
	if c.Status != StatusActive && c.Status != StatusDeactivated {
		return FieldErrorf("status", "must be %q or %q", StatusActive, StatusDeactivated)
	}
	return nil
}
func (c SetIdentityStatus) decide(s *State, r *Realm) ([]Event, error) {
	id, err := r.identity("id", c.ID)
	if err != nil || id.Status == c.Status {
		return nil, err
	}
	return []Event{IdentityStatusChanged{InRealm{r.ID}, c.ID, c.Status, c.bySelf && c.Status == StatusDeactivated}}, nil
}

// DeleteIdentity deletes a user or an app for good, removing every edge of
// it first, so that each event applies without looking at state.
type DeleteIdentity struct{ ID string }

func (c DeleteIdentity) permission(r *Realm) (string, string) {
	return ActionManageUser, r.identityHRN(c.ID)
}
func (c DeleteIdentity) validate() error { return nil }
func (c DeleteIdentity) decide(s *State, r *Realm) ([]Event, error) {
	id, err := r.identity("id", c.ID)
	if err != nil {
		return nil, err
	}
	in := InRealm{r.ID}
	var evs []Event
	for _, g := range id.Groups.sorted() {
		evs = append(evs, MemberRemoved{in, g, c.ID})
	}
	for _, role := range id.Roles.sorted() {
		evs = append(evs, RoleRevoked{in, c.ID, role})
	}
	for _, p := range id.Policies.sorted() {
		evs = append(evs, PolicyDetached{in, p, c.ID})
	}
	for _, p := range id.Projects.sorted() {
		evs = append(evs, ProjectMemberRemoved{in, p, c.ID})
	}
	for _, cred := range sortedKeys(id.Credentials) {
		evs = append(evs, CredentialRemoved{in, c.ID, cred})
	}
	for _, k := range sortedKeys(id.APIKeys) {
		evs = append(evs, APIKeyRemoved{in, c.ID, k})
	}
	return append(evs, IdentityDeleted{in, c.ID}), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// AddCredential adds OAuth client credentials to an app.
type AddCredential struct {
	App          string
	CredentialID string
	ClientID     string
	SecretHash   string
}

func (c AddCredential) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c AddCredential) validate() error {
	if c.SecretHash == "" || !strings.HasPrefix(c.SecretHash, "$argon2id$") {
		return Errorf(EInternal, "credential secret must be hashed with argon2id")
	}
	if err := ValidID("credentialId", c.CredentialID); err != nil {
		return err
	}
	return ValidID("clientId", c.ClientID)
}
func (c AddCredential) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, dup := app.Credentials[c.CredentialID]; dup {
		return nil, &Error{Code: EConflict, Field: "credentialId", Message: "credential " + c.CredentialID + " already exists"}
	}
	if len(app.Credentials) >= s.Limits.CredentialsPerApp {
		return nil, limitErr("an app has at most %d active credentials", s.Limits.CredentialsPerApp)
	}
	if _, taken := s.clients[c.ClientID]; taken {
		return nil, Errorf(EConflict, "client id taken")
	}
	return []Event{CredentialAdded{InRealm{r.ID}, c.App, c.CredentialID, c.ClientID, c.SecretHash}}, nil
}

// RemoveCredential deletes client credentials of an app.
type RemoveCredential struct{ App, CredentialID string }

func (c RemoveCredential) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c RemoveCredential) validate() error { return nil }
func (c RemoveCredential) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, ok := app.Credentials[c.CredentialID]; !ok {
		return nil, &Error{Code: ENotFound, Field: "credentialId", Message: "credential " + c.CredentialID + " not found"}
	}
	return []Event{CredentialRemoved{InRealm{r.ID}, c.App, c.CredentialID}}, nil
}

// AddAPIKey adds an API key (already hashed) to an app.
type AddAPIKey struct{ App, KeyID, KeyHash string }

func (c AddAPIKey) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c AddAPIKey) validate() error {
	if !strings.HasPrefix(c.KeyHash, "$argon2id$") {
		return Errorf(EInternal, "API key must be hashed with argon2id")
	}
	return ValidID("keyId", c.KeyID)
}
func (c AddAPIKey) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, dup := app.APIKeys[c.KeyID]; dup {
		return nil, &Error{Code: EConflict, Field: "keyId", Message: "API key " + c.KeyID + " already exists"}
	}
	if len(app.APIKeys) >= s.Limits.APIKeysPerApp {
		return nil, limitErr("an app has at most %d API keys", s.Limits.APIKeysPerApp)
	}
	return []Event{APIKeyAdded{InRealm{r.ID}, c.App, c.KeyID, c.KeyHash}}, nil
}

// RemoveAPIKey deletes an API key of an app.
type RemoveAPIKey struct{ App, KeyID string }

func (c RemoveAPIKey) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c RemoveAPIKey) validate() error { return nil }
func (c RemoveAPIKey) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, ok := app.APIKeys[c.KeyID]; !ok {
		return nil, &Error{Code: ENotFound, Field: "keyId", Message: "API key " + c.KeyID + " not found"}
	}
	return []Event{APIKeyRemoved{InRealm{r.ID}, c.App, c.KeyID}}, nil
}

// --- groups -------------------------------------------------------------------

// CreateGroup adds a group.
type CreateGroup struct{ ID, Name string }

func (c CreateGroup) permission(r *Realm) (string, string) {
	return ActionCreateGroup, RealmHRN(r.ID)
}
func (c CreateGroup) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	return ValidID("id", c.ID)
}
func (c CreateGroup) decide(s *State, r *Realm) ([]Event, error) {
	if r.Groups[c.ID] != nil || r.Identities[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	return []Event{GroupCreated{InRealm{r.ID}, c.ID, c.Name}}, nil
}

// AddMember puts a user or an app into a group, within both the group's
// member limit and the identity's group limit.
type AddMember struct{ Group, Identity string }

func (c AddMember) permission(r *Realm) (string, string) {
	return ActionManageGroup, GroupHRN(r.ID, c.Group)
}
func (c AddMember) validate() error { return nil }
func (c AddMember) decide(s *State, r *Realm) ([]Event, error) {
	g, err := r.group("group", c.Group)
	if err != nil {
		return nil, err
	}
	id, err := r.identity("identityId", c.Identity)
	if err != nil || g.Members.has(c.Identity) {
		return nil, err
	}
	if len(g.Members) >= s.Limits.MembersPerGroup {
		return nil, limitErr("a group has at most %d members", s.Limits.MembersPerGroup)
	}
	if len(id.Groups) >= s.Limits.GroupsPerIdentity {
		return nil, limitErr("an identity belongs to at most %d groups", s.Limits.GroupsPerIdentity)
	}
	return []Event{MemberAdded{InRealm{r.ID}, c.Group, c.Identity}}, nil
}

// RemoveMember takes an identity out of a group.
type RemoveMember struct{ Group, Identity string }

func (c RemoveMember) permission(r *Realm) (string, string) {
	return ActionManageGroup, GroupHRN(r.ID, c.Group)
}
func (c RemoveMember) validate() error { return nil }
func (c RemoveMember) decide(s *State, r *Realm) ([]Event, error) {
	g, err := r.group("group", c.Group)
	if err != nil || !g.Members.has(c.Identity) {
		return nil, err
	}
	return []Event{MemberRemoved{InRealm{r.ID}, c.Group, c.Identity}}, nil
}

// --- roles -------------------------------------------------------------------

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
	if err != nil || id.Roles.has(c.Role) {
		return nil, err
	}
	if len(id.Roles) >= s.Limits.RolesPerIdentity {
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
	if err != nil || !id.Roles.has(c.Role) {
		return nil, err
	}
	return []Event{RoleRevoked{InRealm{r.ID}, c.Identity, c.Role}}, nil
}

// --- policies ----------------------------------------------------------------

// CreatePolicy adds a policy of statements.
type CreatePolicy struct {
	ID         string
	Name       string
	Statements []Statement
}

func (c CreatePolicy) permission(r *Realm) (string, string) {
	return ActionCreatePolicy, RealmHRN(r.ID)
}

// MaxActionLength bounds action names.
const MaxActionLength = 128

func (c CreatePolicy) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if len(c.Statements) == 0 {
		return FieldErrorf("statements", "at least one statement is needed")
	}
	for i, st := range c.Statements {
		f := "statements[" + strconv.Itoa(i) + "]"
		if st.Effect != Allow && st.Effect != Deny {
			return FieldErrorf(f+".effect", "must be \"allow\" or \"deny\"")
		}
		if len(st.Actions) == 0 {
			return FieldErrorf(f+".actions", "at least one action is needed")
		}
		if len(st.Resources) == 0 {
			return FieldErrorf(f+".resources", "at least one resource is needed")
		}
		for j, a := range st.Actions {
			if err := validAction(f+".actions["+strconv.Itoa(j)+"]", a); err != nil {
				return err
			}
		}
		for j, res := range st.Resources {
			if err := ValidatePattern(f+".resources["+strconv.Itoa(j)+"]", res); err != nil {
				return err
			}
		}
	}
	return ValidID("id", c.ID)
}

func (c CreatePolicy) decide(s *State, r *Realm) ([]Event, error) {
	if len(c.Statements) > s.Limits.StatementsPerPolicy {
		return nil, limitErr("a policy holds at most %d statements, this one %d", s.Limits.StatementsPerPolicy, len(c.Statements))
	}
	perms := 0
	for _, st := range c.Statements {
		perms += len(st.Actions) * len(st.Resources)
	}
	if perms > s.Limits.PermissionsPerPolicy {
		return nil, limitErr("a policy holds at most %d permissions (actions × resources), this one %d", s.Limits.PermissionsPerPolicy, perms)
	}
	if r.Policies[c.ID] != nil {
		return nil, Errorf(EConflict, "policy %s already exists", c.ID)
	}
	return []Event{PolicyCreated{InRealm{r.ID}, c.ID, c.Name, c.Statements}}, nil
}

func validAction(field, a string) error {
	if a == "*" {
		return nil
	}
	if a == "" || len(a) > MaxActionLength {
		return FieldErrorf(field, "an action is a name of 1 to %d characters, or *", MaxActionLength)
	}
	for i, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.')) {
			return FieldErrorf(field, "%q is not an action name (letters, then letters, digits, - _ : .)", a)
		}
	}
	return nil
}

// AttachPolicy attaches a policy realm-wide to an identity or a group.
type AttachPolicy struct{ Policy, Target string }

func (c AttachPolicy) permission(r *Realm) (string, string) {
	return ActionManagePolicy, PolicyHRN(r.ID, c.Policy)
}
func (c AttachPolicy) validate() error { return nil }
func (c AttachPolicy) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.policy("policy", c.Policy)
	if err != nil {
		return nil, err
	}
	if r.Groups[c.Target] == nil {
		if _, err := r.identity("target", c.Target); err != nil {
			return nil, &Error{Code: ENotFound, Field: "target", Message: "no identity or group " + c.Target}
		}
	}
	if p.AttachedTo.has(c.Target) {
		return nil, nil
	}
	return []Event{PolicyAttached{InRealm{r.ID}, c.Policy, c.Target}}, nil
}

// DetachPolicy detaches a policy from an identity or a group.
type DetachPolicy struct{ Policy, Target string }

func (c DetachPolicy) permission(r *Realm) (string, string) {
	return ActionManagePolicy, PolicyHRN(r.ID, c.Policy)
}
func (c DetachPolicy) validate() error { return nil }
func (c DetachPolicy) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.policy("policy", c.Policy)
	if err != nil || !p.AttachedTo.has(c.Target) {
		return nil, err
	}
	return []Event{PolicyDetached{InRealm{r.ID}, c.Policy, c.Target}}, nil
}

// --- projects ----------------------------------------------------------------

// CreateProject adds a project.
type CreateProject struct{ ID, Name string }

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
	return []Event{ProjectCreated{InRealm{r.ID}, c.ID, c.Name}}, nil
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
	seen := set{}
	for i, p := range c.Policies {
		if err := ValidID("policies["+strconv.Itoa(i)+"]", p); err != nil {
			return err
		}
		if seen.has(p) {
			return FieldErrorf("policies["+strconv.Itoa(i)+"]", "policy %s is listed twice", p)
		}
		seen.add(p)
	}
	return nil
}
func (c SetProjectMember) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.project("project", c.Project)
	if err != nil {
		return nil, err
	}
	for i, pol := range c.Policies {
		if _, err := r.policy("policies["+strconv.Itoa(i)+"]", pol); err != nil {
			return nil, err
		}
	}
	if len(c.Policies) > s.Limits.PoliciesPerProjectMember {
		return nil, limitErr("a project member has at most %d project policies", s.Limits.PoliciesPerProjectMember)
	}
	old, isMember := p.Members[c.Member]
	if g := r.Groups[c.Member]; g != nil {
		if !isMember && p.groups >= s.Limits.GroupsPerProject {
			return nil, limitErr("a project has at most %d groups as members", s.Limits.GroupsPerProject)
		}
		if !isMember && len(g.Projects) >= s.Limits.ProjectsPerIdentity {
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
		if !isMember && len(id.Projects) >= s.Limits.ProjectsPerIdentity {
			return nil, limitErr("an identity is a direct member of at most %d projects", s.Limits.ProjectsPerIdentity)
		}
	}
	if isMember && equalStrings(old, c.Policies) {
		return nil, nil
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
// a link from its home into another project.
type AddProjectResource struct {
	Project  string
	HRN      string
	Relation Relation
}

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
		if pl != nil && pl.Home != "" {
			return nil, Errorf(EConflict, "%s already has its home in project %s", c.HRN, pl.Home)
		}
	case RelationLink:
		if pl == nil || pl.Home == "" {
			return nil, &Error{Code: EInvalid, Field: "relation", Message: c.HRN + " has no home project to be linked from"}
		}
		if len(pl.Links) >= s.Limits.LinksPerResource {
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
	if pl := r.Resources[c.HRN]; rel == RelationHome && pl != nil && len(pl.Links) > 0 {
		return nil, Errorf(EConflict, "%s is still linked into %d projects: unlink it first", c.HRN, len(pl.Links))
	}
	return []Event{ProjectResourceRemoved{InRealm{r.ID}, c.Project, c.HRN}}, nil
}
