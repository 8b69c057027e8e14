package iam

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Identities are users and apps: their creation (plain or with sealed
// personal data), status, deletion and token revocation. An app's
// credentials and API keys are in app.go; sign-in and passwords in signin.go.

// IdentityKind tells users from apps.
type IdentityKind string

// Kinds of identity.
const (
	KindUser IdentityKind = "user"
	KindApp  IdentityKind = "app"
)

// IdentityStatus is the lifecycle state of an identity.
type IdentityStatus string

// Statuses of an identity. StatusDeleted marks a permanently deleted
// identity, kept as a tombstone so that its id is never reused.
const (
	StatusActive      IdentityStatus = "active"
	StatusDeactivated IdentityStatus = "deactivated"
	StatusDeleted     IdentityStatus = "deleted"
)

// --- commands ------------------------------------------------------------------

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
	if r.Identities.Get(c.ID) != nil || r.Groups[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	if other := r.emails.Get(strings.ToLower(c.Email)); other != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	return []Event{IdentityCreated{InRealm: InRealm{r.ID}, ID: c.ID, Kind: KindUser, Email: c.Email, Name: c.Name, PasswordHash: c.PasswordHash}}, nil
}

// CreateSealedUser adds a user whose email and name are sealed (encrypted
// under the user's own data key, kept outside the log) and found by a keyed
// blind index of the email.
type CreateSealedUser struct {
	ID           string
	EmailIndex   string
	Sealed       []byte
	PasswordHash string
}

func (c CreateSealedUser) permission(r *Realm) (string, string) {
	return ActionCreateUser, RealmHRN(r.ID)
}
func (c CreateSealedUser) validate() error {
	if c.EmailIndex == "" || len(c.Sealed) == 0 {
		return Errorf(EInternal, "a sealed user needs an email index and sealed data")
	}
	if c.PasswordHash != "" {
		if err := validPasswordHash(c.PasswordHash); err != nil {
			return err
		}
	}
	return ValidID("id", c.ID)
}
func (c CreateSealedUser) decide(s *State, r *Realm) ([]Event, error) {
	if r.Identities.Get(c.ID) != nil || r.Groups[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	if r.emails.Get(c.EmailIndex) != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	return []Event{IdentityCreated{InRealm: InRealm{r.ID}, ID: c.ID, Kind: KindUser, EmailIndex: c.EmailIndex, Sealed: c.Sealed, PasswordHash: c.PasswordHash}}, nil
}

// CreateApp adds an app. RedirectURIs are matched exactly in the
// authorization-code flow. Owner, its creator, becomes its first App
// Manager (Decide sets it to the actor; "" only for the system's own apps).
type CreateApp struct {
	ID           string
	Name         string
	RedirectURIs []string
	Owner        string
}

func (c CreateApp) createdBy(actor string) Command { c.Owner = actor; return c }

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
	if r.Identities.Get(c.ID) != nil || r.Groups[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	first, err := r.firstManager(s, ManagedRef{ManagedApp, c.ID}, c.Owner)
	if err != nil {
		return nil, err
	}
	return append([]Event{IdentityCreated{InRealm: InRealm{r.ID}, ID: c.ID, Kind: KindApp, Name: c.Name, RedirectURIs: c.RedirectURIs, Owner: c.Owner}}, first...), nil
}

// validRedirectURI parses u (net/url) and accepts an https URI with a host,
// or a loopback http URI (RFC 8252 §7.3, for native apps) whose host is
// exactly 127.0.0.1, [::1] or localhost, with an optional port. A URI that
// does not parse, carries user info or a fragment is refused.
func validRedirectURI(u string) error {
	switch {
	case len(u) > 2048:
		return FieldErrorf("redirectUris", "a redirect URI is longer than 2048 bytes")
	case strings.ContainsAny(u, "#\x00 \t\r\n"):
		return FieldErrorf("redirectUris", "%q must not contain a fragment or white space", u)
	}
	p, err := url.Parse(u)
	if err != nil {
		return FieldErrorf("redirectUris", "%q is not a URI: %v", u, errors.Unwrap(err))
	}
	if p.Opaque != "" || p.User != nil || p.Fragment != "" {
		return FieldErrorf("redirectUris", "%q must be an absolute URI with a host, without user info or fragment", u)
	}
	if port := p.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return FieldErrorf("redirectUris", "%q has an invalid port", u)
		}
	} else if strings.HasSuffix(p.Host, ":") {
		return FieldErrorf("redirectUris", "%q has an empty port", u)
	}
	switch host := p.Hostname(); {
	case p.Scheme == "https" && host != "":
		return nil
	case p.Scheme == "http" && (host == "127.0.0.1" || host == "::1" && strings.HasPrefix(p.Host, "[") || host == "localhost"):
		return nil // loopback redirects, as RFC 8252 §7.3 allows for native apps
	}
	return FieldErrorf("redirectUris", "%q must be an https URI with a host, or a loopback http URI (http://127.0.0.1, http://[::1] or http://localhost, with an optional port)", u)
}

// SetIdentityStatus deactivates or reactivates a user or an app. A
// deactivation at a non-zero At also revokes the identity's tokens issued
// until then (TokensRevoked), so a reactivation does not revive them.
type SetIdentityStatus struct {
	ID     string
	Status IdentityStatus
	At     time.Time
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
	evs := []Event{IdentityStatusChanged{InRealm{r.ID}, c.ID, c.Status, c.bySelf && c.Status == StatusDeactivated}}
	if c.Status == StatusDeactivated && !c.At.IsZero() {
		evs = append(evs, TokensRevoked{InRealm{r.ID}, c.ID, c.At, "deactivated"})
	}
	return evs, nil
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
	for _, g := range id.Groups.Sorted() {
		evs = append(evs, MemberRemoved{in, g, c.ID})
	}
	for _, role := range id.Roles.Sorted() {
		evs = append(evs, RoleRevoked{in, c.ID, role})
	}
	for _, p := range id.Policies.Sorted() {
		evs = append(evs, PolicyDetached{in, p, c.ID})
	}
	for _, p := range id.Plans.Sorted() {
		evs = append(evs, PlanDetached{in, p, c.ID})
	}
	for _, p := range id.Projects.Sorted() {
		evs = append(evs, ProjectMemberRemoved{in, p, c.ID})
	}
	app := id.AppState()
	for _, cred := range sortedKeys(app.Credentials) {
		evs = append(evs, CredentialRemoved{in, c.ID, cred})
	}
	for _, k := range sortedKeys(app.APIKeys) {
		evs = append(evs, APIKeyRemoved{in, c.ID, k})
	}
	if app.DefaultProject != "" {
		evs = append(evs, DefaultProjectSet{in, c.ID, ""})
	}
	// What it managed is left to its other managers, or orphaned for the
	// realm's ResourceManagers to take over; an app's own managers go too.
	for _, m := range sortedRefs(r.manages[c.ID]) {
		evs = append(evs, ManagerRemoved{in, m.Kind, m.ID, c.ID})
	}
	for _, m := range app.Managers.Sorted() {
		evs = append(evs, ManagerRemoved{in, ManagedApp, c.ID, m})
	}
	// Shares go the same way: those with the identity, and an app's own.
	for _, app := range r.sharedWith[c.ID].Sorted() {
		evs = append(evs, AppUnshared{in, app, c.ID})
	}
	for _, with := range app.Sharees.Sorted() {
		evs = append(evs, AppUnshared{in, c.ID, with})
	}
	return append(evs, IdentityDeleted{in, c.ID}), nil
}

// ChangePersonalData replaces a user's sealed email and name: Sealed is the
// new data sealed under the user's data key, EmailIndex the new email's
// blind index. The user may do it itself (see selfService); an email
// already used by another user of the realm is a conflict. Was is the
// sealed data the new one was made from (nil for a user created before
// sealing): if it changed meanwhile, a conflict, so that a concurrent edit
// of the other field is not lost.
type ChangePersonalData struct {
	User       string
	EmailIndex string
	Sealed     []byte
	Was        []byte
}

func (c ChangePersonalData) permission(r *Realm) (string, string) {
	return ActionManageUser, r.identityHRN(c.User)
}
func (c ChangePersonalData) validate() error {
	if c.EmailIndex == "" || len(c.Sealed) == 0 {
		return Errorf(EInternal, "personal data needs an email index and sealed data")
	}
	return nil
}
func (c ChangePersonalData) decide(s *State, r *Realm) ([]Event, error) {
	u, err := r.user("id", c.User)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(u.Sealed, c.Was) {
		return nil, Errorf(EConflict, "the user's name or email changed meanwhile; try again")
	}
	if other := r.emails.Get(c.EmailIndex); other != "" && other != c.User {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	return []Event{PersonalDataChanged{InRealm{r.ID}, c.User, c.EmailIndex, c.Sealed}}, nil
}

// RevokeTokens refuses the identity's tokens issued before At (an admin's
// "sign out everywhere").
type RevokeTokens struct {
	Identity string
	At       time.Time
	Reason   string
}

func (c RevokeTokens) permission(r *Realm) (string, string) {
	return ActionManageUser, r.identityHRN(c.Identity)
}
func (c RevokeTokens) validate() error {
	if c.At.IsZero() {
		return Errorf(EInternal, "revoke needs a time")
	}
	return nil
}
func (c RevokeTokens) decide(s *State, r *Realm) ([]Event, error) {
	if _, err := r.identity("identityId", c.Identity); err != nil {
		return nil, err
	}
	return []Event{TokensRevoked{InRealm{r.ID}, c.Identity, c.At, c.Reason}}, nil
}

// --- events --------------------------------------------------------------------

// IdentityCreated creates a user or an app. PasswordHash is an argon2id PHC
// string, never a password.
type IdentityCreated struct {
	InRealm
	ID           string       `json:"id"`
	Kind         IdentityKind `json:"kind"`
	Email        string       `json:"email,omitempty"`
	Name         string       `json:"name,omitempty"`
	PasswordHash string       `json:"passwordHash,omitempty"`
	RedirectURIs []string     `json:"redirectUris,omitempty"`
	Owner        string       `json:"owner,omitempty"`
	// EmailIndex and Sealed replace Email and Name for users whose personal
	// data is encrypted under a per-user key kept outside the log
	// (crypto-shredding; see CreateSealedUser and docs/authentication.md).
	EmailIndex string `json:"emailIndex,omitempty"`
	Sealed     []byte `json:"sealed,omitempty"`
}

// IdentityStatusChanged deactivates or reactivates an identity.
type IdentityStatusChanged struct {
	InRealm
	ID     string         `json:"id"`
	Status IdentityStatus `json:"status"`
	// BySelf: the identity deactivated itself, and may reactivate by
	// signing in again; an administrator's deactivation stands until an
	// administrator lifts it.
	BySelf bool `json:"bySelf,omitempty"`
}

// IdentityDeleted is permanent. Decide emits the removal of every edge of the
// identity before it, so the event needs no state to be applied.
type IdentityDeleted struct {
	InRealm
	ID string `json:"id"`
}

// TokensRevoked refuses every token of the identity issued before Before.
type TokensRevoked struct {
	InRealm
	Identity string    `json:"identity"`
	Before   time.Time `json:"before"`
	Reason   string    `json:"reason"`
}

// PersonalDataChanged replaces a user's sealed email and name and its blind
// index. Any plain email and name (users created before sealing) go: from
// then on the user's personal data is shredded with its key.
type PersonalDataChanged struct {
	InRealm
	User       string `json:"user"`
	EmailIndex string `json:"emailIndex"`
	Sealed     []byte `json:"sealed"`
}

// EventType implements Event.
func (IdentityCreated) EventType() string { return "IdentityCreated" }

// EventType implements Event.
func (IdentityStatusChanged) EventType() string { return "IdentityStatusChanged" }

// EventType implements Event.
func (IdentityDeleted) EventType() string { return "IdentityDeleted" }

// EventType implements Event.
func (TokensRevoked) EventType() string { return "TokensRevoked" }

// EventType implements Event.
func (PersonalDataChanged) EventType() string { return "PersonalDataChanged" }

// --- apply ---------------------------------------------------------------------

func (e IdentityCreated) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	r.Identities.put(r.gen, e.ID, e.identity(r.gen))
	for _, k := range e.emailKeys() {
		if k != "" {
			r.emails.put(r.gen, k, e.ID)
		}
	}
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.ID})
}

// identity returns the identity e creates, for a realm of generation gen.
func (e IdentityCreated) identity(gen uint64) *Identity {
	id := &Identity{
		ID: e.ID, Kind: e.Kind, Status: StatusActive, Email: e.Email, Name: e.Name,
		PasswordHash: e.PasswordHash, EmailIndex: e.EmailIndex, Sealed: e.Sealed, num: names.intern(e.ID), gen: gen,
	}
	// Every app has its AppState from the start, however it is loaded,
	// so that states compare alike.
	if e.Kind == KindApp || len(e.RedirectURIs) > 0 || e.Owner != "" {
		// A copy of exactly its length: a row's decoder leaves room for
		// ten, and the event's list is not the state's to keep.
		id.app = &AppState{RedirectURIs: slices.Clone(e.RedirectURIs), Owner: e.Owner}
	}
	return id
}

// emailKeys returns the keys e's identity is found by among the realm's
// emails: its email lowercased and its email index, each "" when it has
// none.
func (e IdentityCreated) emailKeys() [2]string {
	return [2]string{strings.ToLower(e.Email), e.EmailIndex}
}

// LoadIdentities applies evs, each creating an identity its realm does not
// hold, as ApplyEvents would, for a read model loading its rows, and
// returns the identities in the order of evs. It fills the realms' maps
// bucket after bucket (IDMap.putAll) rather than in the order of evs: at
// 1M identities, one at a time, those inserts were a third of a restart.
func (s *State) LoadIdentities(evs []IdentityCreated) ([]*Identity, error) {
	out := make([]*Identity, 0, len(evs))
	for len(evs) > 0 {
		r := s.realms[evs[0].Realm]
		if r == nil {
			return nil, fmt.Errorf("identity %q of unknown realm %q", evs[0].ID, evs[0].Realm)
		}
		n := 1
		for n < len(evs) && evs[n].Realm == r.ID {
			n++
		}
		ids := make([]idEntry[*Identity], n)
		emails := make([]idEntry[string], 0, 2*n)
		for i, e := range evs[:n] {
			id := e.identity(r.gen)
			out = append(out, id)
			ids[i] = idEntry[*Identity]{hash: idHash(e.ID), key: e.ID, val: id}
			for _, k := range e.emailKeys() {
				if k != "" {
					emails = append(emails, idEntry[string]{hash: idHash(k), key: k, val: e.ID})
				}
			}
		}
		r.Identities.putAll(r.gen, ids)
		r.emails.putAll(r.gen, emails)
		evs = evs[n:]
	}
	return out, nil
}

func (e IdentityStatusChanged) apply(s *State, touch Touch) {
	id := s.realms[e.Realm].ownIdentity(e.ID)
	id.Status, id.SelfDeactivated = e.Status, e.Status == StatusDeactivated && e.BySelf
	if e.Status != StatusActive {
		// A deactivated user's refresh tokens end for good: signing in
		// again starts new ones, an old copy must not come back to life.
		s.realms[e.Realm].endRefreshBefore(id, time.Time{}, touch)
	}
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.ID})
}

func (e PersonalDataChanged) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	for _, old := range []string{strings.ToLower(u.Email), u.EmailIndex} {
		if old != "" && r.emails.Get(old) == e.User {
			r.emails.del(r.gen, old)
		}
	}
	u.Email, u.Name, u.EmailIndex, u.Sealed = "", "", e.EmailIndex, e.Sealed
	r.emails.put(r.gen, e.EmailIndex, e.User)
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.User})
}

func (e IdentityDeleted) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	id := r.ownIdentity(e.ID)
	if r.emails.Get(strings.ToLower(id.Email)) == e.ID {
		r.emails.del(r.gen, strings.ToLower(id.Email))
	}
	r.forgetAuth(id, touch)
	// Keep a tombstone without personal data, so the id is never reused.
	r.Identities.put(r.gen, e.ID, &Identity{ID: e.ID, Kind: id.Kind, Status: StatusDeleted, num: id.num, gen: r.gen})
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.ID})
}

// forgetAuth drops an identity's identity-provider state before it is
// deleted, touching the edges that go with it.
func (r *Realm) forgetAuth(u *Identity, touch Touch) {
	for h := range u.SignInState().AuthCodes {
		delete(r.authCodes, h)
		touch(Change{Kind: ChangeAuthCode, Realm: r.ID, From: u.ID, To: h})
	}
	r.endRefreshBefore(u, time.Time{}, touch)
	for k := range u.AppState().DisabledAPIKeys.All() {
		touch(Change{Kind: ChangeAPIKeyStatus, Realm: r.ID, From: u.ID, To: k})
	}
	r.clearReset(u)
	if u.EmailIndex != "" && r.emails.Get(u.EmailIndex) == u.ID {
		r.emails.del(r.gen, u.EmailIndex)
	}
}

func (e TokensRevoked) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.Identity)
	if u == nil {
		return
	}
	// Refresh tokens are revoked with the access tokens (a reused code
	// included, RFC 6749 §4.1.2).
	r.endRefreshBefore(u, e.Before, touch)
	if u.revokeTokensBefore(e.Before) {
		touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.Identity})
	}
}
