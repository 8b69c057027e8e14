package iam

import (
	"sort"
	"strings"
	"time"
)

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
		IdempotencyRetention:       24 * time.Hour,
		MaxIdempotencyKeysPerRealm: 100_000,
	}
}

type set map[string]struct{}

func (s set) add(k string)      { s[k] = struct{}{} }
func (s set) has(k string) bool { _, ok := s[k]; return ok }
func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// State is the whole access state, built only by applying log entries in
// order. The writer decides against it and each replica answers checks from
// its own copy. It is not safe for concurrent use; owners guard it.
type State struct {
	Limits Limits
	// TrackIdempotency keeps clients' idempotency keys (the writer needs
	// them; replicas do not).
	TrackIdempotency bool

	seq     uint64
	realms  map[string]*Realm
	clients map[string]credentialRef // OAuth client id → credential
	apiKeys map[string]credentialRef // API key id → app
}

type credentialRef struct{ realm, app, credential string }

// Realm holds one organization's entities.
type Realm struct {
	ID         string
	Name       string
	LastSeq    uint64 // sequence of the realm's last log entry: the optimistic lock
	Identities map[string]*Identity
	Groups     map[string]*Group
	Policies   map[string]*Policy
	Projects   map[string]*Project
	Resources  map[string]*ResourcePlacement // by HRN
	emails     map[string]string             // lower-case email → user id
	idem       map[string]IdempotencyRecord
	idemOrder  []string
	roleCache  map[string][]Statement

	// Identity provider (auth_events.go).
	Invitations      map[string]*Invitation
	authCodes        map[string]string // code hash → user
	resetTokens      map[string]string // reset token hash → user
	invitationTokens map[string]string // invitation token hash → invitation
}

type Identity struct {
	ID           string
	Kind         IdentityKind
	Status       IdentityStatus
	Email        string
	Name         string
	PasswordHash string
	// SelfDeactivated: the user deactivated itself (signing in reactivates).
	SelfDeactivated bool
	RedirectURIs    []string
	Owner           string
	Groups          set
	Roles           set
	Policies        set // attached realm-wide
	Projects        set // direct project memberships
	Credentials     map[string]Credential
	APIKeys         map[string]string // key id → argon2id hash
	// Identity provider (auth_events.go): sealed personal data, sign-in
	// failures and lock, token revocation, codes, reset token, key status.
	EmailIndex      string
	Sealed          []byte
	FailedSignIns   int
	LockedUntil     time.Time
	TokensNotBefore time.Time
	ResetTokenHash  string
	ResetExpiresAt  time.Time
	AuthCodes       map[string]AuthCode // code hash → code
	DisabledAPIKeys set
}

// StatusDeleted marks a permanently deleted identity; its id is never reused.
const StatusDeleted IdentityStatus = "deleted"

type Credential struct {
	ClientID   string `json:"clientId"`
	SecretHash string `json:"secretHash"`
	Disabled   bool   `json:"disabled,omitempty"`
}

type Group struct {
	ID       string
	Name     string
	Members  set
	Policies set
	Projects set
}

type Policy struct {
	ID         string
	Name       string
	Statements []Statement
	AttachedTo set
	InProjects set // project ids whose memberships use it
}

type Project struct {
	ID        string
	Name      string
	Members   map[string][]string // identity or group id → project policies
	Resources map[string]Relation // HRN → relation
	groups    int
}

// ResourcePlacement is where a resource lives: its home project and the
// projects it is linked into.
type ResourcePlacement struct {
	Home  string
	Links set
}

// IdempotencyRecord remembers the first answer to an idempotency key.
type IdempotencyRecord struct {
	RequestHash string
	Seq         uint64
	At          time.Time
}

// NewState returns an empty state with the default limits.
func NewState() *State {
	return &State{Limits: DefaultLimits(), realms: map[string]*Realm{}, clients: map[string]credentialRef{}, apiKeys: map[string]credentialRef{}}
}

// Seq is the sequence of the last applied log entry.
func (s *State) Seq() uint64 { return s.seq }

// Realm returns the realm with id, or nil.
func (s *State) Realm(id string) *Realm { return s.realms[id] }

// RealmIDs lists the realms in id order.
func (s *State) RealmIDs() []string {
	ids := make([]string, 0, len(s.realms))
	for id := range s.realms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Identity returns the identity id of realm, or nil.
func (s *State) Identity(realm, id string) *Identity {
	if r := s.realms[realm]; r != nil {
		return r.Identities[id]
	}
	return nil
}

// ClientCredential finds an app credential by OAuth client id.
func (s *State) ClientCredential(clientID string) (realm string, app *Identity, cred Credential, ok bool) {
	ref, ok := s.clients[clientID]
	if !ok {
		return "", nil, Credential{}, false
	}
	app = s.Identity(ref.realm, ref.app)
	if app == nil {
		return "", nil, Credential{}, false
	}
	cred, ok = app.Credentials[ref.credential]
	return ref.realm, app, cred, ok && cred.ClientID == clientID
}

// APIKey finds an app's API key by key id, returning its argon2id hash.
func (s *State) APIKey(keyID string) (realm string, app *Identity, hash string, ok bool) {
	ref, ok := s.apiKeys[keyID]
	if !ok {
		return "", nil, "", false
	}
	app = s.Identity(ref.realm, ref.app)
	if app == nil {
		return "", nil, "", false
	}
	hash, ok = app.APIKeys[keyID]
	return ref.realm, app, hash, ok && !app.DisabledAPIKeys.has(keyID)
}

// UserByEmail finds a user of realm by email, case-insensitively.
func (s *State) UserByEmail(realm, email string) *Identity {
	if r := s.realms[realm]; r != nil {
		return r.Identities[r.emails[strings.ToLower(email)]]
	}
	return nil
}

// Idempotency returns the record of a client's idempotency key in realm.
func (s *State) Idempotency(realm, key string) (IdempotencyRecord, bool) {
	if r := s.realms[realm]; r != nil {
		rec, ok := r.idem[key]
		return rec, ok
	}
	return IdempotencyRecord{}, false
}

// Touch receives the read-model row keys an applied event changed.
type Touch func(key string)

// ApplyEntry applies one log entry. Entries must come in sequence order;
// touch (may be nil) is told every row key whose value may have changed.
func (s *State) ApplyEntry(e LogEntry, touch Touch) {
	for _, c := range e.Commits {
		s.ApplyEvents(c.Events, touch)
	}
	s.Settle(e)
}

// ApplyEvents applies events without moving the position: the writer uses
// it to decide a group of commands before their entry has a sequence, and
// then calls Settle.
func (s *State) ApplyEvents(evs []Event, touch Touch) {
	if touch == nil {
		touch = func(string) {}
	}
	for _, ev := range evs {
		s.apply(ev, touch)
	}
}

// Settle records that entry e (whose events are applied) is at e.Seq: the
// realm's last sequence, the idempotency keys of its commits, the position.
func (s *State) Settle(e LogEntry) {
	for _, c := range e.Commits {
		if len(c.Events) == 0 {
			continue
		}
		realm := s.realms[eventRealm(c.Events[0])]
		if realm == nil {
			continue
		}
		realm.LastSeq = e.Seq
		if s.TrackIdempotency && c.IdempotencyKey != "" {
			realm.rememberIdempotency(c, e.Seq, s.Limits)
		}
	}
	s.seq = e.Seq
}

func (r *Realm) rememberIdempotency(c Commit, seq uint64, l Limits) {
	if r.idem == nil {
		r.idem = map[string]IdempotencyRecord{}
	}
	if _, dup := r.idem[c.IdempotencyKey]; dup {
		return
	}
	r.idem[c.IdempotencyKey] = IdempotencyRecord{RequestHash: c.RequestHash, Seq: seq, At: c.At}
	r.idemOrder = append(r.idemOrder, c.IdempotencyKey)
	// Forget keys past their retention, oldest first, using log time so every
	// copy of the state forgets the same keys.
	for len(r.idemOrder) > 0 {
		old := r.idem[r.idemOrder[0]]
		if len(r.idemOrder) <= l.MaxIdempotencyKeysPerRealm && c.At.Sub(old.At) < l.IdempotencyRetention {
			break
		}
		delete(r.idem, r.idemOrder[0])
		r.idemOrder = r.idemOrder[1:]
	}
}

// RealmOf returns the realm an event changes ("" for heartbeats).
func RealmOf(e Event) string { return eventRealm(e) }

func eventRealm(e Event) string {
	if r, ok := e.(interface{ RealmID() string }); ok {
		return r.RealmID()
	}
	return ""
}
