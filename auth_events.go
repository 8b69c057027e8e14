package iam

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

// This file holds the identity provider's part of the domain: sign-in with
// lockout, authorization codes, passwords, credential and API key status,
// token revocation and invitations. Every one of them is an event decided by
// the one writer under the realm's lock, so that, e.g., "5 failed sign-ins in
// a row lock the account" holds whichever region the attempts came through.
// Secrets never reach the log: codes, reset and invitation tokens appear only
// as SHA-256 hashes (they are 256-bit random, so a fast hash is enough);
// passwords only as argon2id.

// Defaults for the identity provider's rules; commands carry the values in
// force so that the decision (and its event) is self-contained.
const (
	DefaultMaxFailedSignIns   = 5
	DefaultLockoutPeriod      = 15 * time.Minute
	DefaultMaxAuthCodes       = 10
	MaxInvitationRoles        = 5
	MaxInvitationGroups       = 5
	ErrMaxAuthCodesExceeded   = "Exceeded the maximum number of authorization codes that can be created at any given point"
	FieldAccountLocked        = "account"
	FieldAuthorizationCodeErr = "code"
)

// AuthCode is an outstanding or redeemed authorization code of a user,
// stored by the hash of the code.
type AuthCode struct {
	Client      string    `json:"client"` // app id
	RedirectURI string    `json:"redirectUri"`
	Challenge   string    `json:"challenge"` // PKCE S256 challenge
	ExpiresAt   time.Time `json:"expiresAt"`
	Redeemed    bool      `json:"redeemed,omitempty"`
}

// Invitation asks a person, known by a sealed email, to join a realm.
type Invitation struct {
	ID         string    `json:"-"`
	UserID     string    `json:"userId"` // the id the user gets on acceptance
	EmailIndex string    `json:"emailIndex"`
	Sealed     []byte    `json:"sealed,omitempty"`
	Roles      []string  `json:"roles,omitempty"`
	Groups     []string  `json:"groups,omitempty"`
	TokenHash  string    `json:"tokenHash"`
	ExpiresAt  time.Time `json:"expiresAt"`
	InvitedBy  string    `json:"invitedBy,omitempty"`
	Accepted   bool      `json:"accepted,omitempty"`
}

// --- events ------------------------------------------------------------------

// SignInFailed records a wrong password. LockedUntil is set when this failure
// locks the account.
type SignInFailed struct {
	InRealm
	User        string    `json:"user"`
	At          time.Time `json:"at"`
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
}

// SignInSucceeded clears the failure count and any lock.
type SignInSucceeded struct {
	InRealm
	User string    `json:"user"`
	At   time.Time `json:"at"`
}

// AuthCodeIssued records a code by its hash; at applies, the user's codes
// expired by At are forgotten.
type AuthCodeIssued struct {
	InRealm
	User     string    `json:"user"`
	CodeHash string    `json:"codeHash"`
	Code     AuthCode  `json:"code"`
	At       time.Time `json:"at"`
}

// AuthCodeRedeemed marks a code used (kept until it expires, to spot reuse).
type AuthCodeRedeemed struct {
	InRealm
	User     string    `json:"user"`
	CodeHash string    `json:"codeHash"`
	At       time.Time `json:"at"`
}

// TokensRevoked refuses every token of the identity issued before Before.
type TokensRevoked struct {
	InRealm
	Identity string    `json:"identity"`
	Before   time.Time `json:"before"`
	Reason   string    `json:"reason"`
}

// PasswordChanged sets a new argon2id hash; it consumes any reset token and
// clears failures and lock.
type PasswordChanged struct {
	InRealm
	User         string    `json:"user"`
	PasswordHash string    `json:"passwordHash"`
	At           time.Time `json:"at"`
	ByReset      bool      `json:"byReset,omitempty"`
}

// PasswordResetRequested stores the hash of a single-use reset token.
type PasswordResetRequested struct {
	InRealm
	User      string    `json:"user"`
	TokenHash string    `json:"tokenHash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CredentialStatusChanged disables or enables client credentials.
type CredentialStatusChanged struct {
	InRealm
	App          string `json:"app"`
	CredentialID string `json:"credentialId"`
	Disabled     bool   `json:"disabled"`
}

// APIKeyStatusChanged disables or enables an API key.
type APIKeyStatusChanged struct {
	InRealm
	App      string `json:"app"`
	KeyID    string `json:"keyId"`
	Disabled bool   `json:"disabled"`
}

type InvitationCreated struct {
	InRealm
	ID         string     `json:"id"`
	Invitation Invitation `json:"invitation"`
}

// InvitationRenewed is "request again": a new token and expiry.
type InvitationRenewed struct {
	InRealm
	ID        string    `json:"id"`
	TokenHash string    `json:"tokenHash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

type InvitationAccepted struct {
	InRealm
	ID   string `json:"id"`
	User string `json:"user"`
}

func (SignInFailed) EventType() string            { return "SignInFailed" }
func (SignInSucceeded) EventType() string         { return "SignInSucceeded" }
func (AuthCodeIssued) EventType() string          { return "AuthCodeIssued" }
func (AuthCodeRedeemed) EventType() string        { return "AuthCodeRedeemed" }
func (TokensRevoked) EventType() string           { return "TokensRevoked" }
func (PasswordChanged) EventType() string         { return "PasswordChanged" }
func (PasswordResetRequested) EventType() string  { return "PasswordResetRequested" }
func (CredentialStatusChanged) EventType() string { return "CredentialStatusChanged" }
func (APIKeyStatusChanged) EventType() string     { return "APIKeyStatusChanged" }
func (InvitationCreated) EventType() string       { return "InvitationCreated" }
func (InvitationRenewed) EventType() string       { return "InvitationRenewed" }
func (InvitationAccepted) EventType() string      { return "InvitationAccepted" }

// authEventFactories are registered with the others in events.go.
var authEventFactories = []func() Event{
	func() Event { return &SignInFailed{} },
	func() Event { return &SignInSucceeded{} },
	func() Event { return &AuthCodeIssued{} },
	func() Event { return &AuthCodeRedeemed{} },
	func() Event { return &TokensRevoked{} },
	func() Event { return &PasswordChanged{} },
	func() Event { return &PasswordResetRequested{} },
	func() Event { return &CredentialStatusChanged{} },
	func() Event { return &APIKeyStatusChanged{} },
	func() Event { return &InvitationCreated{} },
	func() Event { return &InvitationRenewed{} },
	func() Event { return &InvitationAccepted{} },
}

func init() {
	for _, f := range authEventFactories {
		eventFactories[f().EventType()] = f
	}
}

// --- state helpers -------------------------------------------------------------

// HashSecret is the SHA-256 (base64url) under which codes and tokens are
// stored. They are 256-bit random, so a slow hash would add nothing.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// UserByEmailIndex finds a user of realm by the keyed blind index of its
// email.
func (s *State) UserByEmailIndex(realm, index string) *Identity {
	if r := s.realms[realm]; r != nil && index != "" {
		return r.Identities[r.emails[index]]
	}
	return nil
}

// AuthCodeOwner returns the user holding the code with hash h in realm.
func (s *State) AuthCodeOwner(realm, h string) (*Identity, AuthCode, bool) {
	r := s.realms[realm]
	if r == nil {
		return nil, AuthCode{}, false
	}
	id := r.Identities[r.authCodes[h]]
	if id == nil {
		return nil, AuthCode{}, false
	}
	c, ok := id.AuthCodes[h]
	return id, c, ok
}

// Invitation returns an invitation of realm by id, or nil.
func (s *State) Invitation(realm, id string) *Invitation {
	if r := s.realms[realm]; r != nil {
		return r.Invitations[id]
	}
	return nil
}

// InvitationByToken finds an invitation by the hash of its token.
func (s *State) InvitationByToken(realm, h string) *Invitation {
	if r := s.realms[realm]; r != nil {
		return r.Invitations[r.invitationTokens[h]]
	}
	return nil
}

// Locked reports whether the identity is locked out at t.
func (id *Identity) Locked(t time.Time) bool { return id.LockedUntil.After(t) }

// OutstandingCodes counts the unredeemed codes not expired at t.
func (id *Identity) OutstandingCodes(t time.Time) int {
	n := 0
	for _, c := range id.AuthCodes {
		if !c.Redeemed && c.ExpiresAt.After(t) {
			n++
		}
	}
	return n
}

// --- commands ------------------------------------------------------------------

// systemOnly is embedded by commands that the API executes as the system
// (Actor ""), after authenticating the person itself: sign-in, redemption,
// self-service password changes, invitation acceptance.
type systemOnly struct{}

func (systemOnly) permission(*Realm) (string, string) { return "system", "" }

// CodeGrant asks RecordSignIn to issue an authorization code.
type CodeGrant struct {
	CodeHash string
	Code     AuthCode
	Max      int // outstanding codes a user may hold
}

// RecordSignIn records the outcome of a password check the API made against
// PasswordHash (the hash it verified). A locked account is refused even with
// the right password; failures count towards the lock; a success clears the
// count, reactivates a deactivated user (as HERE's FAQ says) and may issue
// an authorization code.
type RecordSignIn struct {
	systemOnly
	User          string
	PasswordHash  string
	Success       bool
	At            time.Time
	MaxFailures   int
	LockoutPeriod time.Duration
	Code          *CodeGrant
}

func (c RecordSignIn) validate() error {
	if c.At.IsZero() || c.MaxFailures < 1 || c.LockoutPeriod <= 0 {
		return Errorf(EInternal, "sign-in needs a time and lockout rules")
	}
	return nil
}

// LockedError is the refusal of a locked account.
func LockedError(until time.Time) error {
	return &Error{Code: EUnauthenticated, Field: FieldAccountLocked,
		Message: "the account is locked after too many failed sign-ins; try again after " + until.UTC().Format(time.RFC3339)}
}

func (c RecordSignIn) decide(s *State, r *Realm) ([]Event, error) {
	u, err := r.user("user", c.User)
	if err != nil {
		return nil, err
	}
	if u.Locked(c.At) {
		return nil, LockedError(u.LockedUntil)
	}
	if u.PasswordHash == "" || u.PasswordHash != c.PasswordHash {
		return nil, Errorf(EConflict, "the password changed during sign-in; try again")
	}
	in := InRealm{r.ID}
	if !c.Success {
		ev := SignInFailed{InRealm: in, User: c.User, At: c.At}
		if u.FailedSignIns+1 >= c.MaxFailures {
			ev.LockedUntil = c.At.Add(c.LockoutPeriod)
		}
		return []Event{ev}, nil
	}
	var evs []Event
	if c.Code != nil {
		if u.OutstandingCodes(c.At) >= c.Code.Max {
			return nil, &Error{Code: ELimitExceeded, Field: FieldAuthorizationCodeErr, Message: ErrMaxAuthCodesExceeded}
		}
		if c.Code.CodeHash == "" || !c.Code.Code.ExpiresAt.After(c.At) {
			return nil, Errorf(EInternal, "an authorization code needs a hash and a future expiry")
		}
		if r.authCodes[c.Code.CodeHash] != "" {
			return nil, Errorf(EConflict, "authorization code collision; try again")
		}
	}
	if u.Status == StatusDeactivated {
		// Signing in again undoes only a user's own deactivation: one by
		// an administrator (a compromised account, say) must not be lifted
		// by whoever holds the password.
		if !u.SelfDeactivated {
			return nil, &Error{Code: EUnauthenticated, Field: "account", Message: "the account was deactivated by an administrator"}
		}
		evs = append(evs, IdentityStatusChanged{InRealm: in, ID: c.User, Status: StatusActive})
	}
	if u.FailedSignIns > 0 || !u.LockedUntil.IsZero() {
		evs = append(evs, SignInSucceeded{InRealm: in, User: c.User, At: c.At})
	}
	if c.Code != nil {
		evs = append(evs, AuthCodeIssued{InRealm: in, User: c.User, CodeHash: c.Code.CodeHash, Code: c.Code.Code, At: c.At})
	}
	return evs, nil
}

// RedeemAuthCode exchanges a code at the token endpoint: single-use, bound to
// the client, the redirect URI and the PKCE verifier. A code presented again
// after its redemption revokes the tokens of its user (RFC 6749 §4.1.2): the
// decision then returns TokensRevoked and the API refuses the request.
type RedeemAuthCode struct {
	systemOnly
	CodeHash    string
	Client      string
	RedirectURI string
	Verifier    string
	At          time.Time
}

func (c RedeemAuthCode) validate() error {
	if c.At.IsZero() || c.CodeHash == "" {
		return Errorf(EInternal, "redeem needs a time and a code")
	}
	return nil
}

func codeErr(msg string) error {
	return &Error{Code: EInvalid, Field: FieldAuthorizationCodeErr, Message: msg}
}

func (c RedeemAuthCode) decide(s *State, r *Realm) ([]Event, error) {
	u := r.Identities[r.authCodes[c.CodeHash]]
	code, ok := AuthCode{}, false
	if u != nil {
		code, ok = u.AuthCodes[c.CodeHash]
	}
	if !ok || !code.ExpiresAt.After(c.At) {
		return nil, codeErr("the authorization code is unknown or expired")
	}
	if code.Client != c.Client {
		return nil, codeErr("the authorization code was issued to another client")
	}
	if code.Redeemed {
		return []Event{TokensRevoked{InRealm: InRealm{r.ID}, Identity: u.ID, Before: c.At, Reason: "authorization code reused"}}, nil
	}
	if code.RedirectURI != c.RedirectURI {
		return nil, codeErr("redirect_uri does not match the authorization request")
	}
	if !pkceS256(c.Verifier, code.Challenge) {
		return nil, codeErr("code_verifier does not match the code challenge")
	}
	if u.Status != StatusActive {
		return nil, codeErr("the user is not active")
	}
	return []Event{AuthCodeRedeemed{InRealm: InRealm{r.ID}, User: u.ID, CodeHash: c.CodeHash, At: c.At}}, nil
}

// pkceS256 is RFC 7636 §4.6 for S256, the only method accepted.
func pkceS256(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		ch := verifier[i]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.IndexByte("-._~", ch) >= 0) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
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

// ChangePassword sets a user's password after the API verified the current
// one against OldHash (which must still be the current hash).
type ChangePassword struct {
	systemOnly
	User    string
	OldHash string
	NewHash string
	At      time.Time
}

func (c ChangePassword) validate() error { return validPasswordHash(c.NewHash) }
func (c ChangePassword) decide(s *State, r *Realm) ([]Event, error) {
	u, err := r.user("user", c.User)
	if err != nil {
		return nil, err
	}
	if u.PasswordHash != c.OldHash {
		return nil, Errorf(EConflict, "the password changed meanwhile; try again")
	}
	return []Event{PasswordChanged{InRealm: InRealm{r.ID}, User: c.User, PasswordHash: c.NewHash, At: c.At}}, nil
}

func validPasswordHash(h string) error {
	if !strings.HasPrefix(h, "$argon2id$") {
		return Errorf(EInternal, "password must be hashed with argon2id")
	}
	return nil
}

// RequestPasswordReset stores the hash of a reset token for a user; the
// token itself goes to the user by mail, never to the log.
type RequestPasswordReset struct {
	systemOnly
	User      string
	TokenHash string
	ExpiresAt time.Time
}

func (c RequestPasswordReset) validate() error {
	if c.TokenHash == "" || c.ExpiresAt.IsZero() {
		return Errorf(EInternal, "a reset needs a token hash and an expiry")
	}
	return nil
}
func (c RequestPasswordReset) decide(s *State, r *Realm) ([]Event, error) {
	if _, err := r.user("user", c.User); err != nil {
		return nil, err
	}
	if r.resetTokens[c.TokenHash] != "" {
		return nil, Errorf(EConflict, "reset token collision; try again")
	}
	return []Event{PasswordResetRequested{InRealm{r.ID}, c.User, c.TokenHash, c.ExpiresAt}}, nil
}

// ResetPassword consumes a reset token (single use, before its expiry).
type ResetPassword struct {
	systemOnly
	TokenHash string
	NewHash   string
	At        time.Time
}

func (c ResetPassword) validate() error { return validPasswordHash(c.NewHash) }
func (c ResetPassword) decide(s *State, r *Realm) ([]Event, error) {
	u := r.Identities[r.resetTokens[c.TokenHash]]
	if u == nil || u.Status == StatusDeleted || u.ResetTokenHash != c.TokenHash || !u.ResetExpiresAt.After(c.At) {
		return nil, &Error{Code: EInvalid, Field: "token", Message: "the reset token is unknown, used or expired"}
	}
	return []Event{PasswordChanged{InRealm: InRealm{r.ID}, User: u.ID, PasswordHash: c.NewHash, At: c.At, ByReset: true}}, nil
}

// SetCredentialStatus disables or enables client credentials of an app.
type SetCredentialStatus struct {
	App, CredentialID string
	Disabled          bool
}

func (c SetCredentialStatus) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c SetCredentialStatus) validate() error { return nil }
func (c SetCredentialStatus) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	cred, ok := app.Credentials[c.CredentialID]
	if !ok {
		return nil, &Error{Code: ENotFound, Field: "credentialId", Message: "credential " + c.CredentialID + " not found"}
	}
	if cred.Disabled == c.Disabled {
		return nil, nil
	}
	return []Event{CredentialStatusChanged{InRealm{r.ID}, c.App, c.CredentialID, c.Disabled}}, nil
}

// SetAPIKeyStatus disables or enables an API key of an app.
type SetAPIKeyStatus struct {
	App, KeyID string
	Disabled   bool
}

func (c SetAPIKeyStatus) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c SetAPIKeyStatus) validate() error { return nil }
func (c SetAPIKeyStatus) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, ok := app.APIKeys[c.KeyID]; !ok {
		return nil, &Error{Code: ENotFound, Field: "keyId", Message: "API key " + c.KeyID + " not found"}
	}
	if app.DisabledAPIKeys.has(c.KeyID) == c.Disabled {
		return nil, nil
	}
	return []Event{APIKeyStatusChanged{InRealm{r.ID}, c.App, c.KeyID, c.Disabled}}, nil
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
	if r.Identities[c.ID] != nil || r.Groups[c.ID] != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	if r.emails[c.EmailIndex] != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	return []Event{IdentityCreated{InRealm: InRealm{r.ID}, ID: c.ID, Kind: KindUser, EmailIndex: c.EmailIndex, Sealed: c.Sealed, PasswordHash: c.PasswordHash}}, nil
}

// CreateInvitation invites a person by (sealed) email with at most 5 roles
// and 5 groups. OrgAdmin and OrgInviter may (createUser on the realm); the
// API also checks that the inviter may grant the roles and add to the groups.
type CreateInvitation struct {
	ID         string
	Invitation Invitation
}

func (c CreateInvitation) permission(r *Realm) (string, string) {
	return ActionCreateUser, RealmHRN(r.ID)
}
func (c CreateInvitation) validate() error {
	inv := c.Invitation
	if len(inv.Roles) > MaxInvitationRoles {
		return &Error{Code: ELimitExceeded, Field: "roles", Message: "limit exceeded: an invitation carries at most 5 roles"}
	}
	if len(inv.Groups) > MaxInvitationGroups {
		return &Error{Code: ELimitExceeded, Field: "groups", Message: "limit exceeded: an invitation carries at most 5 groups"}
	}
	for _, role := range inv.Roles {
		if !IsRole(role) {
			return FieldErrorf("roles", "%q is not a role (see GET /v1/roles)", role)
		}
	}
	if inv.EmailIndex == "" || inv.TokenHash == "" || inv.ExpiresAt.IsZero() {
		return Errorf(EInternal, "an invitation needs an email index, a token hash and an expiry")
	}
	if err := ValidID("userId", inv.UserID); err != nil {
		return err
	}
	return ValidID("id", c.ID)
}
func (c CreateInvitation) decide(s *State, r *Realm) ([]Event, error) {
	if r.Invitations[c.ID] != nil {
		return nil, Errorf(EConflict, "invitation %s already exists", c.ID)
	}
	if r.Identities[c.Invitation.UserID] != nil {
		return nil, Errorf(EConflict, "identity %s already exists", c.Invitation.UserID)
	}
	if r.emails[c.Invitation.EmailIndex] != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	if r.invitationTokens[c.Invitation.TokenHash] != "" {
		return nil, Errorf(EConflict, "invitation token collision; try again")
	}
	for _, g := range c.Invitation.Groups {
		if _, err := r.group("groups", g); err != nil {
			return nil, err
		}
	}
	inv := c.Invitation
	inv.ID, inv.Accepted = "", false
	return []Event{InvitationCreated{InRealm{r.ID}, c.ID, inv}}, nil
}

// RenewInvitation is "request again": a fresh token and expiry; the old token
// stops working.
type RenewInvitation struct {
	ID        string
	TokenHash string
	ExpiresAt time.Time
}

func (c RenewInvitation) permission(r *Realm) (string, string) {
	return ActionCreateUser, RealmHRN(r.ID)
}
func (c RenewInvitation) validate() error {
	if c.TokenHash == "" || c.ExpiresAt.IsZero() {
		return Errorf(EInternal, "a renewal needs a token hash and an expiry")
	}
	return nil
}
func (c RenewInvitation) decide(s *State, r *Realm) ([]Event, error) {
	inv := r.Invitations[c.ID]
	if inv == nil {
		return nil, &Error{Code: ENotFound, Field: "id", Message: "invitation " + c.ID + " not found"}
	}
	if inv.Accepted {
		return nil, Errorf(EConflict, "invitation %s was accepted already", c.ID)
	}
	if r.invitationTokens[c.TokenHash] != "" {
		return nil, Errorf(EConflict, "invitation token collision; try again")
	}
	return []Event{InvitationRenewed{InRealm{r.ID}, c.ID, c.TokenHash, c.ExpiresAt}}, nil
}

// AcceptInvitation creates the invited user, with the invitation's roles and
// the groups that still exist and have room. Sealed holds the email and the
// name the person chose, sealed under the same data key as the invitation.
type AcceptInvitation struct {
	systemOnly
	TokenHash    string
	Sealed       []byte
	PasswordHash string
	At           time.Time
}

func (c AcceptInvitation) validate() error {
	if len(c.Sealed) == 0 {
		return Errorf(EInternal, "acceptance needs sealed data")
	}
	return validPasswordHash(c.PasswordHash)
}
func (c AcceptInvitation) decide(s *State, r *Realm) ([]Event, error) {
	invID := r.invitationTokens[c.TokenHash]
	inv := r.Invitations[invID]
	if inv == nil || inv.Accepted || inv.TokenHash != c.TokenHash || !inv.ExpiresAt.After(c.At) {
		return nil, &Error{Code: EInvalid, Field: "token", Message: "the invitation is unknown, used or expired"}
	}
	if r.Identities[inv.UserID] != nil {
		return nil, Errorf(EConflict, "identity %s already exists", inv.UserID)
	}
	if r.emails[inv.EmailIndex] != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	in := InRealm{r.ID}
	evs := []Event{IdentityCreated{InRealm: in, ID: inv.UserID, Kind: KindUser, EmailIndex: inv.EmailIndex, Sealed: c.Sealed, PasswordHash: c.PasswordHash}}
	for _, role := range inv.Roles {
		evs = append(evs, RoleGranted{in, inv.UserID, role})
	}
	groups := 0
	for _, g := range inv.Groups {
		if grp := r.Groups[g]; grp != nil && len(grp.Members) < s.Limits.MembersPerGroup && groups < s.Limits.GroupsPerIdentity {
			evs = append(evs, MemberAdded{in, g, inv.UserID})
			groups++
		}
	}
	return append(evs, InvitationAccepted{in, invID, inv.UserID}), nil
}

// --- apply ---------------------------------------------------------------------

// applyAuth applies the events of this file; apply calls it for any event
// type it does not know itself.
func (s *State) applyAuth(ev Event, touch Touch) {
	switch e := ev.(type) {
	case SignInFailed:
		u := s.realms[e.Realm].Identities[e.User]
		u.FailedSignIns++
		if !e.LockedUntil.IsZero() {
			u.LockedUntil, u.FailedSignIns = e.LockedUntil, 0
		}
		touch(identityKey(e.Realm, e.User))
	case SignInSucceeded:
		u := s.realms[e.Realm].Identities[e.User]
		u.FailedSignIns, u.LockedUntil = 0, time.Time{}
		touch(identityKey(e.Realm, e.User))
	case AuthCodeIssued:
		r := s.realms[e.Realm]
		u := r.Identities[e.User]
		r.pruneCodes(u, e.At, touch)
		u.AuthCodes[e.CodeHash] = e.Code
		r.authCodes[e.CodeHash] = e.User
		touch(edgeKey(e.Realm, edgeAuthCode, e.User, e.CodeHash))
	case AuthCodeRedeemed:
		r := s.realms[e.Realm]
		u := r.Identities[e.User]
		c := u.AuthCodes[e.CodeHash]
		c.Redeemed = true
		u.AuthCodes[e.CodeHash] = c
		touch(edgeKey(e.Realm, edgeAuthCode, e.User, e.CodeHash))
		r.pruneCodes(u, e.At, touch)
	case TokensRevoked:
		if u := s.realms[e.Realm].Identities[e.Identity]; u != nil && e.Before.After(u.TokensNotBefore) {
			u.TokensNotBefore = e.Before
			touch(identityKey(e.Realm, e.Identity))
		}
	case PasswordChanged:
		r := s.realms[e.Realm]
		u := r.Identities[e.User]
		u.PasswordHash = e.PasswordHash
		u.FailedSignIns, u.LockedUntil = 0, time.Time{}
		r.clearReset(u)
		touch(identityKey(e.Realm, e.User))
	case PasswordResetRequested:
		r := s.realms[e.Realm]
		u := r.Identities[e.User]
		r.clearReset(u)
		u.ResetTokenHash, u.ResetExpiresAt = e.TokenHash, e.ExpiresAt
		r.resetTokens[e.TokenHash] = e.User
		touch(identityKey(e.Realm, e.User))
	case CredentialStatusChanged:
		app := s.realms[e.Realm].Identities[e.App]
		c := app.Credentials[e.CredentialID]
		c.Disabled = e.Disabled
		app.Credentials[e.CredentialID] = c
		touch(edgeKey(e.Realm, edgeCredential, e.App, e.CredentialID))
	case APIKeyStatusChanged:
		app := s.realms[e.Realm].Identities[e.App]
		if e.Disabled {
			app.DisabledAPIKeys.add(e.KeyID)
		} else {
			delete(app.DisabledAPIKeys, e.KeyID)
		}
		touch(edgeKey(e.Realm, edgeAPIKeyDisabled, e.App, e.KeyID))
	case InvitationCreated:
		r := s.realms[e.Realm]
		inv := e.Invitation
		inv.ID = e.ID
		r.Invitations[e.ID] = &inv
		r.invitationTokens[inv.TokenHash] = e.ID
		touch(invitationKey(e.Realm, e.ID))
	case InvitationRenewed:
		r := s.realms[e.Realm]
		inv := r.Invitations[e.ID]
		delete(r.invitationTokens, inv.TokenHash)
		inv.TokenHash, inv.ExpiresAt = e.TokenHash, e.ExpiresAt
		r.invitationTokens[inv.TokenHash] = e.ID
		touch(invitationKey(e.Realm, e.ID))
	case InvitationAccepted:
		r := s.realms[e.Realm]
		inv := r.Invitations[e.ID]
		inv.Accepted = true
		delete(r.invitationTokens, inv.TokenHash)
		touch(invitationKey(e.Realm, e.ID))
	}
}

// pruneCodes forgets the codes of u expired at t: they expire on their own.
func (r *Realm) pruneCodes(u *Identity, t time.Time, touch Touch) {
	for h, c := range u.AuthCodes {
		if !c.ExpiresAt.After(t) {
			delete(u.AuthCodes, h)
			delete(r.authCodes, h)
			touch(edgeKey(r.ID, edgeAuthCode, u.ID, h))
		}
	}
}

func (r *Realm) clearReset(u *Identity) {
	if u.ResetTokenHash != "" {
		delete(r.resetTokens, u.ResetTokenHash)
	}
	u.ResetTokenHash, u.ResetExpiresAt = "", time.Time{}
}

// forgetAuth drops an identity's identity-provider state before it is
// deleted, touching the rows that go with it.
func (r *Realm) forgetAuth(u *Identity, touch Touch) {
	for h := range u.AuthCodes {
		delete(r.authCodes, h)
		touch(edgeKey(r.ID, edgeAuthCode, u.ID, h))
	}
	for k := range u.DisabledAPIKeys {
		touch(edgeKey(r.ID, edgeAPIKeyDisabled, u.ID, k))
	}
	r.clearReset(u)
	if u.EmailIndex != "" && r.emails[u.EmailIndex] == u.ID {
		delete(r.emails, u.EmailIndex)
	}
}
