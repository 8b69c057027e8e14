package iam

import (
	"iter"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// set is a set of ids. Code outside this file reads it only through Has,
// Len, All and Sorted, so that the index can choose its representation.
//
// It holds interned ids (names below) rather than strings: at 10M grants
// the string-keyed maps per edge were most of the heap and most of replay's
// time. An empty set is nil; a small one is a sorted slice, 4 bytes an id;
// past smallSet ids, a roaring bitmap (chunks of 2^16 ids, each an array or
// a bitmap), which holds a policy's 90,000 users in 8–128 KiB where a map
// took 1.2 MiB; after a snapshot, its copy shares the chunks and copies
// only the one a change touches (shareBitmap, cow.go), where copying the
// whole map was most of a time-travel read's time. The choice depends
// only on the length, so equal sets are alike however they were built (a
// state replayed and one loaded from rows compare equal).
type set struct{ p *setData }

type setData struct {
	small []uint32 // sorted; nil when big is used
	big   *roaring.Bitmap
	gen   uint64 // cow.go: of the entity it belongs to, for sets shared
}

// smallSet is the largest set kept as a slice: an identity's groups,
// policies and projects are nearly always fewer, and a sorted slice that
// size is searched as fast as a map and costs a tenth of its memory.
const smallSet = 16

// Has reports whether k is in the set.
func (s set) Has(k string) bool {
	if s.p == nil {
		return false
	}
	id, ok := names.lookup(k)
	return ok && s.p.has(id)
}

func (d *setData) has(id uint32) bool {
	if d.big != nil {
		return d.big.Contains(id)
	}
	_, ok := slices.BinarySearch(d.small, id)
	return ok
}

// Len is the number of ids in the set.
func (s set) Len() int {
	switch {
	case s.p == nil:
		return 0
	case s.p.big != nil:
		return int(s.p.big.GetCardinality())
	}
	return len(s.p.small)
}

// All yields the ids in no particular order; use Sorted where the order
// reaches an answer, or where the loop changes the set (a small set is a
// slice, which a removal shifts under the loop).
func (s set) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		if s.p == nil {
			return
		}
		strs := names.snapshot()
		if s.p.big != nil {
			s.p.big.Iterate(func(id uint32) bool { return yield(strs[id]) })
			return
		}
		for _, id := range s.p.small {
			if !yield(strs[id]) {
				return
			}
		}
	}
}

// Sorted returns the ids in order: decisions and evaluation walk sets in a
// fixed order so that every copy of the state answers alike.
func (s set) Sorted() []string {
	out := slices.AppendSeq(make([]string, 0, s.Len()), s.All())
	sort.Strings(out)
	return out
}

// add puts k in the set, making the set on first use. An entity's sets and
// maps stay nil while empty: most identities hold no credentials, roles,
// managers or sharees, and at 100k identities the empty maps made up front
// were an eighth of the heap.
func (s *set) add(k string) { s.addNum(names.intern(k)) }

// addNum puts an interned id in the set.
func (s *set) addNum(id uint32) {
	if s.p == nil {
		s.p = &setData{small: []uint32{id}}
		return
	}
	d := s.p
	if d.big != nil {
		d.big.Add(id)
		return
	}
	i, found := slices.BinarySearch(d.small, id)
	if found {
		return
	}
	if len(d.small) < smallSet {
		d.small = slices.Insert(d.small, i, id)
		return
	}
	d.big = roaring.BitmapOf(d.small...)
	d.big.Add(id)
	d.small = nil
}

// remove takes k out of the set; an emptied set is nil again, as one never
// filled, so that a state replayed and one loaded from rows are alike.
func (s *set) remove(k string) {
	id, ok := names.lookup(k)
	if !ok || s.p == nil {
		return
	}
	d := s.p
	if d.big == nil {
		if i, found := slices.BinarySearch(d.small, id); found {
			d.small = slices.Delete(d.small, i, i+1)
		}
		if len(d.small) == 0 {
			s.p = nil
		}
		return
	}
	d.big.Remove(id)
	if d.big.GetCardinality() <= smallSet {
		d.small = d.big.ToArray() // ascending
		d.big = nil
	}
}

// clone returns a copy that shares nothing with s.
func (s set) clone() set {
	if s.p == nil {
		return s
	}
	d := &setData{small: slices.Clone(s.p.small)}
	if s.p.big != nil {
		d.big = shareBitmap(s.p.big)
		d.big.CloneCopyOnWriteContainers()
		d.big.SetCopyOnWrite(false)
	}
	return set{d}
}

// bitmapShares serializes shareBitmap: roaring's copy-on-write Clone marks
// the source's chunks as shared too, a write to flags that two forks
// cloning one snapshot's set at once would race on. Nothing else reads or
// writes a shared bitmap's flags: reads (Contains, Iterate, ToArray,
// GetCardinality) never look at them, and a set of another generation is
// never changed again (cow.go).
var bitmapShares sync.Mutex

// shareBitmap returns a copy of b that shares its chunks (2^16 ids each)
// until it changes one, which it copies first: a snapshot's first change
// to a policy attached to 90,000 users copies a chunk of a few KiB, not
// the whole set.
func shareBitmap(b *roaring.Bitmap) *roaring.Bitmap {
	if b == nil {
		return nil
	}
	bitmapShares.Lock()
	defer bitmapShares.Unlock()
	b.SetCopyOnWrite(true)
	return b.Clone()
}

// names interns the ids held in sets: each id string is kept once per
// process, and sets hold its 4-byte number. It is shared by every State
// (the writer's, each replica's, their clones), so a number means the same
// id everywhere and cloning a state needs no table of its own. It only
// grows: an id once used stays, as the log that named it does.
var names = &internTable{ids: map[string]uint32{}}

type internTable struct {
	mu   sync.RWMutex
	ids  map[string]uint32
	strs []string // by number; only appended to
	room int      // how many ids ids was last sized for
}

// reserve makes room for n more ids, so that a load interning a million
// ids builds the table once rather than growing it step by step. A table
// holding n ids already is left alone: in a process that replayed the
// same log (a second replica, a benchmark) the ids are there, and copying
// the table would only double it.
func (t *internTable) reserve(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ids)+n <= t.room || len(t.ids) >= n {
		return
	}
	t.room = len(t.ids) + n
	ids := make(map[string]uint32, t.room)
	maps.Copy(ids, t.ids)
	t.ids = ids
	t.strs = slices.Grow(t.strs, n)
}

// ReserveIdentities sizes the identity and email maps of an empty realm,
// and the table of interned ids, for n identities to come: a read model
// loading its rows knows how many there are, and at 1M identities growing
// the maps an insert at a time cost a quarter of the load. It does nothing
// for a realm that is missing or holds identities already.
func (s *State) ReserveIdentities(realm string, n int) {
	r := s.realms[realm]
	if r == nil || r.Identities.Len() > 0 || n <= 0 {
		return
	}
	r.Identities.reserve(r.gen, n)
	r.emails.reserve(r.gen, n)
	names.reserve(n)
}

// lookup returns k's number without interning it: reads (checks with
// whatever ids a caller sends) never grow the table.
func (t *internTable) lookup(k string) (uint32, bool) {
	t.mu.RLock()
	id, ok := t.ids[k]
	t.mu.RUnlock()
	return id, ok
}

// intern returns k's number, giving it the next one if it has none.
func (t *internTable) intern(k string) uint32 {
	if id, ok := t.lookup(k); ok {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[k]; ok {
		return id
	}
	id := uint32(len(t.strs))
	t.ids[k] = id
	t.strs = append(t.strs, k)
	return id
}

// snapshot returns the strings by number as of now. Entries below its
// length never change, so it is read without the lock; a set only holds
// numbers interned before it was last changed, all within the snapshot.
func (t *internTable) snapshot() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.strs
}

// put sets m[k], making m on first use.
func put[M ~map[string]V, V any](m *M, k string, v V) {
	if *m == nil {
		*m = M{}
	}
	(*m)[k] = v
}

// drop deletes m[k]; an emptied map is nil again.
func drop[M ~map[string]V, V any](m *M, k string) {
	delete(*m, k)
	if len(*m) == 0 {
		*m = nil
	}
}

// sortedKeys returns the keys of m in order: decisions and evaluation walk
// maps in a fixed order so that every copy of the state answers alike.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
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

	seq    uint64
	gen    uint64 // cow.go
	realms map[string]*Realm
	// clients and apiKeys are IDMaps, shared with snapshots bucket by
	// bucket (cow.go): as Go maps, shared whole and copied before the
	// first change after a checkpoint, copying them took 80 ms of a
	// profile of the 340 ms that the workload's 10,000-entry tail took to
	// apply, checkpointed every 1,000.
	clients IDMap[credentialRef] // OAuth client id → credential
	apiKeys IDMap[credentialRef] // API key id → app
	// revokedKeys are the token signing keys revoked, by kid
	// (signingkey.go).
	revokedKeys map[string]RevokedKey
	// sharedRevokedKeys: revokedKeys is a snapshot's too, so an apply
	// copies it before its first change (ownRevokedKeys). Few keys are
	// ever revoked, and rarely.
	sharedRevokedKeys bool
}

type credentialRef struct{ realm, app, credential string }

// Realm holds one organization's entities.
type Realm struct {
	ID         string
	Name       string
	System     bool   // the system realm (RealmCreated.System)
	LastSeq    uint64 // sequence of the realm's last log entry: the optimistic lock
	gen        uint64 // cow.go: the entities of this generation are its own
	Identities IDMap[*Identity]
	Groups     map[string]*Group
	Policies   map[string]*Policy
	Projects   map[string]*Project
	Resources  map[string]*ResourcePlacement // by HRN
	Plans      map[string]*Plan              // plan.go; nil until the first plan
	emails     IDMap[string]                 // lower-case email, or its blind index → user id
	idem       map[string]IdempotencyRecord
	idemOrder  []string
	roleCache  map[string][]Statement
	// manages is the reverse of the entities' Managers: manager id → what
	// it manages, for the apps-per-user limit and deletions. Each set is
	// replaced whole on a change, never changed in place, so that
	// snapshots share them: copying every set took two thirds of a
	// snapshot of a 820k-row index (82–92 ms; BenchmarkCheckpointIndex).
	manages map[string]map[ManagedRef]struct{}
	// sharedWith is the reverse of the apps' Sharees: identity or group id
	// → the apps shared with it, for its permissions and its deletion.
	sharedWith map[string]set

	// Identity provider (signin.go, invitation.go).
	Invitations      map[string]*Invitation
	authCodes        map[string]string     // code hash → user
	refreshTokens    map[string]refreshRef // refresh token hash (current or used) → family
	resetTokens      map[string]string     // reset token hash → user
	invitationTokens map[string]string     // invitation token hash → invitation
}

// Identity is a user or an app of a realm.
type Identity struct {
	ID           string
	Kind         IdentityKind
	Status       IdentityStatus
	Email        string
	Name         string
	PasswordHash string
	Groups       set
	Roles        set
	Policies     set // attached realm-wide
	Plans        set // plans attached (plan.go); nil until the first
	Projects     set // direct project memberships
	// Identity provider (identity.go, signin.go): sealed personal data;
	// the sign-in state is signIn's.
	EmailIndex string
	Sealed     []byte
	num        uint32 // ID interned (names): the number its edges hold
	// SelfDeactivated: the user deactivated itself (signing in reactivates).
	SelfDeactivated bool
	gen             uint64 // cow.go
	// signIn is nil while it is the zero SignInState (changeSignIn): most
	// identities never have one, and inline its fields took 112 of an
	// identity's 408 bytes.
	signIn *SignInState
	// app is an app's own (AppState), nil for a user: inline, its fields
	// took another 96 bytes of every user.
	app *AppState
}

// AppState is what only an app holds.
type AppState struct {
	RedirectURIs []string
	Owner        string
	Managers     set // its managers: identities and groups (manager.go)
	Sharees      set // those it is shared with: identities and groups (share.go)
	Credentials  map[string]Credential
	APIKeys      map[string]string // key id → argon2id hash
	// DisabledAPIKeys are its API keys turned off (APIKeyStatusChanged).
	DisabledAPIKeys set
	// DefaultProject is the project id its token is scoped to when asked
	// for without a scope ("" for none); see SetDefaultProject.
	DefaultProject string
}

// AppState returns what the identity holds as an app, the zero AppState
// for a user. Its maps and sets are the identity's: read them, never
// change them.
func (id *Identity) AppState() AppState {
	if id.app == nil {
		return AppState{}
	}
	return *id.app
}

// ownApp returns the app's own state to change, id being an identity its
// realm owns (ownIdentity).
func (id *Identity) ownApp() *AppState {
	if id.app == nil {
		id.app = new(AppState)
	}
	return id.app
}

// Credential is a client credential of an app (OAuth 2.0 client
// credentials grant); SecretHash is argon2id.
type Credential struct {
	ClientID   string
	SecretHash string
	Disabled   bool
}

// Group is a set of identities that policies can be attached to.
type Group struct {
	ID       string
	Name     string
	Members  set
	Policies set
	Plans    set // plans attached (plan.go); nil until the first
	Projects set
	Managers set      // its group admins: identities and groups
	num      uint32   // ID interned (names)
	gen      uint64   // cow.go
	loading  []uint32 // members an EdgeLoader has yet to add (edgeload.go)
}

// Policy is a named list of statements, attached realm-wide or used by
// project memberships.
type Policy struct {
	ID         string
	Name       string
	Statements []Statement
	AttachedTo set
	InProjects set      // project ids whose memberships use it
	num        uint32   // ID interned (names)
	gen        uint64   // cow.go
	loading    []uint32 // holders an EdgeLoader has yet to add (edgeload.go)
}

// Project holds resources and grants its members policies on them.
type Project struct {
	ID   string
	Name string
	// Members maps an identity or group id to the policies given to it
	// here: realm policy ids, or HRNs of this project's own policies.
	Members   map[string][]string
	Resources map[string]Relation // HRN → relation
	Managers  set                 // its project admins: identities and groups
	// Policies live in the project (projectpolicy.go); nil until the first.
	Policies map[string]*Policy
	// DefaultMemberPolicies are given to a member added without policies.
	DefaultMemberPolicies []string
	groups                int
	gen                   uint64 // cow.go
}

// ResourcePlacement is where a resource lives: its home project and the
// projects it is linked into.
type ResourcePlacement struct {
	Home  string
	Links set
	// NotLinkable: its home project refuses new links (links made
	// before stay); see SetResourceLinkable.
	NotLinkable bool
	gen         uint64 // cow.go
}

// IdempotencyRecord remembers the first answer to an idempotency key.
type IdempotencyRecord struct {
	RequestHash string
	Seq         uint64
	At          time.Time
}

// NewState returns an empty state with the default limits.
func NewState() *State {
	return &State{Limits: DefaultLimits(), realms: map[string]*Realm{}, revokedKeys: map[string]RevokedKey{}}
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
		return r.Identities.Get(id)
	}
	return nil
}

// ClientCredential finds an app credential by OAuth client id.
func (s *State) ClientCredential(clientID string) (realm string, app *Identity, cred Credential, ok bool) {
	ref, ok := s.clients.Lookup(clientID)
	if !ok {
		return "", nil, Credential{}, false
	}
	app = s.Identity(ref.realm, ref.app)
	if app == nil {
		return "", nil, Credential{}, false
	}
	cred, ok = app.AppState().Credentials[ref.credential]
	return ref.realm, app, cred, ok && cred.ClientID == clientID
}

// APIKey finds an app's API key by key id, returning its argon2id hash.
func (s *State) APIKey(keyID string) (realm string, app *Identity, hash string, ok bool) {
	ref, ok := s.apiKeys.Lookup(keyID)
	if !ok {
		return "", nil, "", false
	}
	app = s.Identity(ref.realm, ref.app)
	if app == nil {
		return "", nil, "", false
	}
	as := app.AppState()
	hash, ok = as.APIKeys[keyID]
	return ref.realm, app, hash, ok && !as.DisabledAPIKeys.Has(keyID)
}

// UserByEmail finds a user of realm by email, case-insensitively.
func (s *State) UserByEmail(realm, email string) *Identity {
	if r := s.realms[realm]; r != nil {
		return r.Identities.Get(r.emails.Get(strings.ToLower(email)))
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

// UserByEmailIndex finds a user of realm by the keyed blind index of its
// email.
func (s *State) UserByEmailIndex(realm, index string) *Identity {
	if r := s.realms[realm]; r != nil && index != "" {
		return r.Identities.Get(r.emails.Get(index))
	}
	return nil
}
