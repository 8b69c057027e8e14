package iam

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strings"
	"time"
)

// Sign-in with lockout, authorization codes (with PKCE), passwords and their
// resets. Every one of them is an event decided by the one writer under the
// realm's lock, so that, e.g., "5 failed sign-ins in a row lock the account"
// holds whichever region the attempts came through. Secrets never reach the
// log: codes and reset tokens appear only as SHA-256 hashes (they are 256-bit
// random, so a fast hash is enough); passwords only as argon2id.

// Defaults for the sign-in rules; commands carry the values in force so that
// the decision (and its event) is self-contained.
const (
	DefaultMaxFailedSignIns   = 5
	DefaultLockoutPeriod      = 15 * time.Minute
	DefaultMaxAuthCodes       = 10
	ErrMaxAuthCodesExceeded   = "Exceeded the maximum number of authorization codes that can be created at any given point"
	FieldAccountLocked        = "account"
	FieldAccountDeactivated   = "status"
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
	// What the token endpoint needs for OIDC: the granted scopes, the
	// client's nonce (echoed in the ID token; not a secret) and the time
	// of the sign-in (auth_time).
	Scope    string    `json:"scope,omitempty"`
	Nonce    string    `json:"nonce,omitempty"`
	AuthTime time.Time `json:"authTime,omitzero"`
}

// HashSecret is the SHA-256 (base64url) under which codes and tokens are
// stored. They are 256-bit random, so a slow hash would add nothing.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SignInState is an identity's sign-in and token state: failures and
// lock, token revocation, reset token, authorization codes and refresh
// families (refresh.go).
type SignInState struct {
	FailedSignIns   int
	LockedUntil     time.Time
	TokensNotBefore time.Time
	ResetTokenHash  string
	ResetExpiresAt  time.Time
	AuthCodes       map[string]AuthCode      // code hash → code
	RefreshFamilies map[string]RefreshFamily // family id → family
}

func (st *SignInState) isZero() bool {
	return st.FailedSignIns == 0 && st.LockedUntil.IsZero() && st.TokensNotBefore.IsZero() && st.ResetTokenHash == "" &&
		st.ResetExpiresAt.IsZero() && len(st.AuthCodes) == 0 && len(st.RefreshFamilies) == 0
}

// SignInState returns the identity's sign-in state, the zero one when it
// has none. Its maps are the identity's: read them, never change them.
func (id *Identity) SignInState() SignInState {
	if id.signIn == nil {
		return SignInState{}
	}
	return *id.signIn
}

// changeSignIn changes the sign-in state of id, an identity its realm owns
// (ownIdentity), and drops it once it is zero again: an identity with none
// holds none, however it got there, so that states compare alike.
func (id *Identity) changeSignIn(change func(*SignInState)) {
	if id.signIn == nil {
		id.signIn = new(SignInState)
	}
	change(id.signIn)
	if id.signIn.isZero() {
		id.signIn = nil
	}
}

// Locked reports whether the identity is locked out at t.
func (id *Identity) Locked(t time.Time) bool {
	return id.signIn != nil && id.signIn.LockedUntil.After(t)
}

// OutstandingCodes counts the unredeemed codes not expired at t.
func (id *Identity) OutstandingCodes(t time.Time) int {
	n := 0
	for _, c := range id.SignInState().AuthCodes {
		if !c.Redeemed && c.ExpiresAt.After(t) {
			n++
		}
	}
	return n
}

// --- commands ------------------------------------------------------------------

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
		return nil, LockedError(u.SignInState().LockedUntil)
	}
	if u.PasswordHash == "" || u.PasswordHash != c.PasswordHash {
		return nil, Errorf(EConflict, "the password changed during sign-in; try again")
	}
	in := InRealm{r.ID}
	if !c.Success {
		ev := SignInFailed{InRealm: in, User: c.User, At: c.At}
		if u.SignInState().FailedSignIns+1 >= c.MaxFailures {
			ev.LockedUntil = c.At.Add(c.LockoutPeriod)
		}
		return []Event{ev}, nil
	}
	var evs []Event
	if u.Status == StatusDeactivated {
		// Signing in again undoes only a user's own deactivation: one by
		// an administrator (a compromised account, say) must not be lifted
		// by whoever holds the password. Its own field, so that the page
		// does not mistake it for a lock.
		if !u.SelfDeactivated {
			return nil, &Error{Code: EUnauthenticated, Field: FieldAccountDeactivated, Message: "the account was deactivated by an administrator"}
		}
		evs = append(evs, IdentityStatusChanged{InRealm: in, ID: c.User, Status: StatusActive})
	}
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
	if st := u.SignInState(); st.FailedSignIns > 0 || !st.LockedUntil.IsZero() {
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
// Refresh starts a refresh-token family if the code's scope has
// offline_access (the API cannot know the scope before the writer judges
// the code, so it always offers one).
type RedeemAuthCode struct {
	systemOnly
	CodeHash    string
	Client      string
	RedirectURI string
	Verifier    string
	At          time.Time
	Refresh     *RefreshGrant
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
	u := r.Identities.Get(r.authCodes[c.CodeHash])
	code, ok := AuthCode{}, false
	if u != nil {
		code, ok = u.SignInState().AuthCodes[c.CodeHash]
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
	evs := []Event{AuthCodeRedeemed{InRealm: InRealm{r.ID}, User: u.ID, CodeHash: c.CodeHash, At: c.At,
		Scope: code.Scope, Nonce: code.Nonce, AuthTime: code.AuthTime}}
	if g := c.Refresh; g != nil && slices.Contains(strings.Fields(code.Scope), ScopeOfflineAccess) {
		if g.Family == "" || g.TokenHash == "" || !g.ExpiresAt.After(c.At) {
			return nil, Errorf(EInternal, "a refresh grant needs a family, a hash and a future expiry")
		}
		if _, taken := r.refreshTokens[g.TokenHash]; taken || u.SignInState().RefreshFamilies[g.Family].Current != "" {
			return nil, Errorf(EConflict, "refresh token collision; try again")
		}
		evs = append(evs, RefreshFamilyStarted{InRealm: InRealm{r.ID}, User: u.ID, ID: g.Family, At: c.At,
			Family: RefreshFamily{Client: code.Client, Scope: code.Scope, AuthTime: code.AuthTime, StartedAt: c.At, ExpiresAt: g.ExpiresAt, Current: g.TokenHash}})
	}
	return evs, nil
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

// ErrResetTokenInvalid is ResetPassword's answer to a token that is
// unknown, used or expired.
var ErrResetTokenInvalid = &Error{Code: EInvalid, Field: "token", Message: "the reset token is unknown, used or expired"}

// resetUser is the user a reset token (its hash) resets at at, or nil when
// the token is unknown, used or expired.
func (r *Realm) resetUser(tokenHash string, at time.Time) *Identity {
	u := r.Identities.Get(r.resetTokens[tokenHash])
	if u == nil || u.Status == StatusDeleted {
		return nil
	}
	if st := u.SignInState(); st.ResetTokenHash != tokenHash || !st.ResetExpiresAt.After(at) {
		return nil
	}
	return u
}

// ResetTokenValid reports whether ResetPassword would accept the token
// (its hash) in realm at at: the API asks before it hashes the new
// password, so a bad token costs no argon2id work.
func (s *State) ResetTokenValid(realm, tokenHash string, at time.Time) bool {
	r := s.Realm(realm)
	return r != nil && r.resetUser(tokenHash, at) != nil
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
	u := r.resetUser(c.TokenHash, c.At)
	if u == nil {
		return nil, ErrResetTokenInvalid
	}
	return []Event{PasswordChanged{InRealm: InRealm{r.ID}, User: u.ID, PasswordHash: c.NewHash, At: c.At, ByReset: true}}, nil
}

// --- events --------------------------------------------------------------------

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
// Scope, Nonce and AuthTime repeat the code's, for the token endpoint to
// answer from the decision itself rather than a second read of the state.
type AuthCodeRedeemed struct {
	InRealm
	User     string    `json:"user"`
	CodeHash string    `json:"codeHash"`
	At       time.Time `json:"at"`
	Scope    string    `json:"scope,omitempty"`
	Nonce    string    `json:"nonce,omitempty"`
	AuthTime time.Time `json:"authTime,omitzero"`
}

// PasswordChanged sets a new argon2id hash; it consumes any reset token,
// clears failures and lock, and revokes the user's tokens issued until At.
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

// EventType implements Event.
func (SignInFailed) EventType() string { return "SignInFailed" }

// EventType implements Event.
func (SignInSucceeded) EventType() string { return "SignInSucceeded" }

// EventType implements Event.
func (AuthCodeIssued) EventType() string { return "AuthCodeIssued" }

// EventType implements Event.
func (AuthCodeRedeemed) EventType() string { return "AuthCodeRedeemed" }

// EventType implements Event.
func (PasswordChanged) EventType() string { return "PasswordChanged" }

// EventType implements Event.
func (PasswordResetRequested) EventType() string { return "PasswordResetRequested" }

// --- apply ---------------------------------------------------------------------

func (e SignInFailed) apply(s *State, touch Touch) {
	s.realms[e.Realm].ownIdentity(e.User).changeSignIn(func(st *SignInState) {
		st.FailedSignIns++
		if !e.LockedUntil.IsZero() {
			st.LockedUntil, st.FailedSignIns = e.LockedUntil, 0
		}
	})
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.User})
}

func (e SignInSucceeded) apply(s *State, touch Touch) {
	s.realms[e.Realm].ownIdentity(e.User).changeSignIn(clearFailures)
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.User})
}

func (e AuthCodeIssued) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	r.pruneCodes(u, e.At, touch)
	u.changeSignIn(func(st *SignInState) { put(&st.AuthCodes, e.CodeHash, e.Code) })
	r.authCodes[e.CodeHash] = e.User
	touch(Change{Kind: ChangeAuthCode, Realm: e.Realm, From: e.User, To: e.CodeHash})
}

func (e AuthCodeRedeemed) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	u.changeSignIn(func(st *SignInState) {
		c := st.AuthCodes[e.CodeHash]
		c.Redeemed = true
		st.AuthCodes[e.CodeHash] = c
	})
	touch(Change{Kind: ChangeAuthCode, Realm: e.Realm, From: e.User, To: e.CodeHash})
	r.pruneCodes(u, e.At, touch)
}

func (e PasswordChanged) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	u.PasswordHash = e.PasswordHash
	u.changeSignIn(clearFailures)
	r.clearReset(u)
	r.endRefreshBefore(u, time.Time{}, touch)
	u.revokeTokensBefore(e.At)
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.User})
}

func (e PasswordResetRequested) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	r.clearReset(u)
	u.changeSignIn(func(st *SignInState) { st.ResetTokenHash, st.ResetExpiresAt = e.TokenHash, e.ExpiresAt })
	r.resetTokens[e.TokenHash] = e.User
	touch(Change{Kind: ChangeIdentity, Realm: e.Realm, From: e.User})
}

// pruneCodes forgets the codes of u expired at t: they expire on their own.
func (r *Realm) pruneCodes(u *Identity, t time.Time, touch Touch) {
	for h, c := range u.SignInState().AuthCodes {
		if !c.ExpiresAt.After(t) {
			u.changeSignIn(func(st *SignInState) { drop(&st.AuthCodes, h) })
			delete(r.authCodes, h)
			touch(Change{Kind: ChangeAuthCode, Realm: r.ID, From: u.ID, To: h})
		}
	}
}

func (r *Realm) clearReset(u *Identity) {
	if u.signIn == nil {
		return
	}
	if h := u.signIn.ResetTokenHash; h != "" {
		delete(r.resetTokens, h)
	}
	u.changeSignIn(func(st *SignInState) { st.ResetTokenHash, st.ResetExpiresAt = "", time.Time{} })
}

func clearFailures(st *SignInState) { st.FailedSignIns, st.LockedUntil = 0, time.Time{} }

// revokeTokensBefore makes id's tokens issued before t invalid, unless
// those before a later time are already; false when they are.
func (id *Identity) revokeTokensBefore(t time.Time) bool {
	if !t.After(id.SignInState().TokensNotBefore) {
		return false
	}
	id.changeSignIn(func(st *SignInState) { st.TokensNotBefore = t })
	return true
}
