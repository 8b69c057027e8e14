package iam

import "time"

// Refresh tokens of the authorization-code flow (OAuth 2.0 Security BCP
// §4.14): a code redeemed with offline_access starts a family; every use
// rotates its token; a token presented after it was rotated away (a replay:
// someone else holds a copy) ends the whole family, so that neither the thief
// nor the client can refresh any longer. The family's state is decided by the
// one writer and lives in the log, so every hub node agrees on which token is
// current after a leader move. Tokens appear only as HashSecret hashes: they
// are 256-bit random, so SHA-256 makes a lookup key that cannot be reversed,
// and a slow hash would only slow every refresh.

// Defaults for refresh-token families.
const (
	// DefaultRefreshLifetime is how long a family lives from the sign-in
	// that started it, however often it is rotated: the user signs in again
	// after it.
	DefaultRefreshLifetime = 30 * 24 * time.Hour
	// MaxUsedRefreshTokens bounds the rotated-away hashes a family keeps to
	// spot a replay; an older one is merely unknown (refused, the family
	// kept). It bounds the family's size in the log and the read model.
	MaxUsedRefreshTokens = 32
	FieldRefreshTokenErr = "refresh_token"
)

// ScopeOfflineAccess is the OIDC scope that asks for a refresh token.
const ScopeOfflineAccess = "offline_access"

// RefreshFamily is the chain of refresh tokens descended from one
// authorization code.
type RefreshFamily struct {
	Client    string    `json:"client"` // app id
	Scope     string    `json:"scope,omitempty"`
	AuthTime  time.Time `json:"authTime"`  // the sign-in behind the family
	StartedAt time.Time `json:"startedAt"` // the code's redemption
	ExpiresAt time.Time `json:"expiresAt"`
	Current   string    `json:"current"`        // hash of the one usable token
	Used      []string  `json:"used,omitempty"` // hashes rotated away, oldest first
}

// refreshRef locates a refresh token hash: its user and family.
type refreshRef struct{ user, family string }

// RefreshGrant asks RedeemAuthCode to start a refresh-token family when the
// code's scope has offline_access.
type RefreshGrant struct {
	Family    string // a new random id
	TokenHash string
	ExpiresAt time.Time
}

// RotateRefreshToken exchanges the refresh token TokenHash of Client for
// NewHash. A token of another client or unknown or expired is refused; one
// rotated away already ends its family: the decision then returns
// RefreshFamilyRevoked and the API refuses the request.
type RotateRefreshToken struct {
	systemOnly
	TokenHash string
	NewHash   string
	Client    string
	At        time.Time
}

func refreshErr(msg string) error {
	return &Error{Code: EInvalid, Field: FieldRefreshTokenErr, Message: msg}
}

func (c RotateRefreshToken) validate() error {
	if c.At.IsZero() || c.TokenHash == "" || c.NewHash == "" {
		return Errorf(EInternal, "a refresh needs a time, the token and its successor")
	}
	return nil
}

func (c RotateRefreshToken) decide(s *State, r *Realm) ([]Event, error) {
	ref, ok := r.refreshTokens[c.TokenHash]
	var f RefreshFamily
	if u := r.Identities.Get(ref.user); ok && u != nil {
		f, ok = u.SignInState().RefreshFamilies[ref.family]
	}
	if !ok || !f.ExpiresAt.After(c.At) {
		return nil, refreshErr("the refresh token is unknown, expired or revoked")
	}
	if f.Client != c.Client {
		return nil, refreshErr("the refresh token was issued to another client")
	}
	if f.Current != c.TokenHash {
		return []Event{RefreshFamilyRevoked{InRealm: InRealm{r.ID}, User: ref.user, Family: ref.family, Reason: "refresh token reused"}}, nil
	}
	if _, taken := r.refreshTokens[c.NewHash]; taken {
		return nil, Errorf(EConflict, "refresh token collision; try again")
	}
	return []Event{RefreshTokenRotated{InRealm: InRealm{r.ID}, User: ref.user, Family: ref.family, NewHash: c.NewHash, At: c.At, Scope: f.Scope}}, nil
}

// --- events --------------------------------------------------------------------

// RefreshFamilyStarted records a family; at apply, the user's families
// expired by At are forgotten.
type RefreshFamilyStarted struct {
	InRealm
	User   string        `json:"user"`
	ID     string        `json:"id"`
	Family RefreshFamily `json:"family"`
	At     time.Time     `json:"at"`
}

// RefreshTokenRotated makes NewHash the family's current token and the
// previous one used (a replay of it ends the family).
type RefreshTokenRotated struct {
	InRealm
	User    string    `json:"user"`
	Family  string    `json:"family"`
	NewHash string    `json:"newHash"`
	At      time.Time `json:"at"`
	// Scope repeats the family's, for the token endpoint to answer from
	// the decision itself.
	Scope string `json:"scope,omitempty"`
}

// RefreshFamilyRevoked ends a family: none of its tokens refreshes again.
type RefreshFamilyRevoked struct {
	InRealm
	User   string `json:"user"`
	Family string `json:"family"`
	Reason string `json:"reason"`
}

// EventType implements Event.
func (RefreshFamilyStarted) EventType() string { return "RefreshFamilyStarted" }

// EventType implements Event.
func (RefreshTokenRotated) EventType() string { return "RefreshTokenRotated" }

// EventType implements Event.
func (RefreshFamilyRevoked) EventType() string { return "RefreshFamilyRevoked" }

// --- apply ---------------------------------------------------------------------

func (e RefreshFamilyStarted) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	r.pruneRefresh(u, e.At, touch)
	u.changeSignIn(func(st *SignInState) { put(&st.RefreshFamilies, e.ID, e.Family) })
	r.refreshTokens[e.Family.Current] = refreshRef{e.User, e.ID}
	for _, h := range e.Family.Used {
		r.refreshTokens[h] = refreshRef{e.User, e.ID}
	}
	touch(Change{Kind: ChangeRefreshFamily, Realm: e.Realm, From: e.User, To: e.ID})
}

func (e RefreshTokenRotated) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	u := r.ownIdentity(e.User)
	f := u.SignInState().RefreshFamilies[e.Family]
	f.Used = append(f.Used, f.Current)
	if n := len(f.Used) - MaxUsedRefreshTokens; n > 0 {
		for _, h := range f.Used[:n] {
			delete(r.refreshTokens, h)
		}
		f.Used = append([]string(nil), f.Used[n:]...)
	}
	f.Current = e.NewHash
	u.changeSignIn(func(st *SignInState) { st.RefreshFamilies[e.Family] = f })
	r.refreshTokens[e.NewHash] = refreshRef{e.User, e.Family}
	touch(Change{Kind: ChangeRefreshFamily, Realm: e.Realm, From: e.User, To: e.Family})
	r.pruneRefresh(u, e.At, touch)
}

func (e RefreshFamilyRevoked) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	r.endRefresh(r.ownIdentity(e.User), e.Family, touch)
}

// endRefresh forgets a family and every hash of it.
func (r *Realm) endRefresh(u *Identity, id string, touch Touch) {
	f, ok := u.SignInState().RefreshFamilies[id]
	if !ok {
		return
	}
	delete(r.refreshTokens, f.Current)
	for _, h := range f.Used {
		delete(r.refreshTokens, h)
	}
	u.changeSignIn(func(st *SignInState) { drop(&st.RefreshFamilies, id) })
	touch(Change{Kind: ChangeRefreshFamily, Realm: r.ID, From: u.ID, To: id})
}

// endRefreshBefore ends the families of u started by t (a password change
// or a revocation of the user's tokens), or all of them for a zero t.
func (r *Realm) endRefreshBefore(u *Identity, t time.Time, touch Touch) {
	for id, f := range u.SignInState().RefreshFamilies {
		if t.IsZero() || !f.StartedAt.After(t) {
			r.endRefresh(u, id, touch)
		}
	}
}

// pruneRefresh forgets the families of u expired at t: they end on their own.
func (r *Realm) pruneRefresh(u *Identity, t time.Time, touch Touch) {
	for id, f := range u.SignInState().RefreshFamilies {
		if !f.ExpiresAt.After(t) {
			r.endRefresh(u, id, touch)
		}
	}
}
