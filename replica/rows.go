package replica

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/iam-project/iam"
	segjson "github.com/segmentio/encoding/json"
)

// The read model's durable form is a set of rows (key → value) derived from
// the state: one row per entity and one per edge, so that an event touches
// only small rows. Keys sort realms first, then entities, then edges, so a
// state can be loaded back in key order. This layout is on disk in every
// read model and snapshot: change it only with a migration.
const (
	rowRealm      = "1"
	rowIdentity   = "2"
	rowGroup      = "3"
	rowPolicy     = "4"
	rowProject    = "5"
	rowEdge       = "6"
	rowInvitation = "7"
	sep           = "\x00"

	edgeMember          = "m"
	edgeRole            = "r"
	edgeAttachment      = "a"
	edgeProjectMember   = "pm"
	edgeProjectResource = "pr"
	edgeCredential      = "c"
	edgeAPIKey          = "k"
	edgeAPIKeyDisabled  = "kd"
	edgeAuthCode        = "ac"
	edgeDefaultProject  = "dp"
	edgeAppManager      = "ma"
	edgeGroupManager    = "mg"
	edgeProjectManager  = "mp"
	edgeRevokedKey      = "sk"
	edgeRefreshFamily   = "rf"
	// Sharing and linking (iam share.go). "rn" sorts after "pr", so that a
	// load meets a resource's home before the home's word on linking it.
	edgeAppShare            = "sa"
	edgeResourceNotLinkable = "rn"
	// Project policies and plans (issue 10). Each sorts before what refers
	// to it, since rows load in key order: "pd" (a project's own policy)
	// and "pdm" (its default member policies) before "pm" (memberships
	// naming them); "pl" (a plan) before "pla" (its attachments). A plan is
	// an edge row with an empty To rather than an entity kind of its own:
	// an entity kind after "7" would load after the edges that attach it.
	edgeProjectPolicy   = "pd"
	edgeProjectDefaults = "pdm"
	edgePlan            = "pl"
	edgePlanAttachment  = "pla"
)

// entityRows and edgeRows name the row of each kind of iam.Change.
var (
	entityRows = [...]string{
		iam.ChangeIdentity:   rowIdentity,
		iam.ChangeGroup:      rowGroup,
		iam.ChangePolicy:     rowPolicy,
		iam.ChangeProject:    rowProject,
		iam.ChangeInvitation: rowInvitation,
	}
	edgeRows = [...]string{
		iam.ChangeMember:              edgeMember,
		iam.ChangeRole:                edgeRole,
		iam.ChangeAttachment:          edgeAttachment,
		iam.ChangeProjectMember:       edgeProjectMember,
		iam.ChangeProjectResource:     edgeProjectResource,
		iam.ChangeCredential:          edgeCredential,
		iam.ChangeAPIKey:              edgeAPIKey,
		iam.ChangeAPIKeyStatus:        edgeAPIKeyDisabled,
		iam.ChangeAuthCode:            edgeAuthCode,
		iam.ChangeDefaultProject:      edgeDefaultProject,
		iam.ChangeAppManager:          edgeAppManager,
		iam.ChangeGroupManager:        edgeGroupManager,
		iam.ChangeProjectManager:      edgeProjectManager,
		iam.ChangeRevokedKey:          edgeRevokedKey,
		iam.ChangeRefreshFamily:       edgeRefreshFamily,
		iam.ChangeAppShare:            edgeAppShare,
		iam.ChangeResourceNotLinkable: edgeResourceNotLinkable,
		iam.ChangeProjectPolicy:       edgeProjectPolicy,
		iam.ChangeProjectDefaults:     edgeProjectDefaults,
		iam.ChangePlan:                edgePlan,
		iam.ChangePlanAttachment:      edgePlanAttachment,
	}
	// managedKinds is the managed entity's kind of each manager edge.
	managedKinds = map[iam.ChangeKind]iam.ManagedKind{
		iam.ChangeAppManager:     iam.ManagedApp,
		iam.ChangeGroupManager:   iam.ManagedGroup,
		iam.ChangeProjectManager: iam.ManagedProject,
	}
)

// RowKey returns the key of the row that stores what c names.
func RowKey(c iam.Change) string {
	var buf [128]byte // most keys fit: one allocation, the string's
	return string(appendRowKey(buf[:0], c))
}

// appendRowKey appends the key of c's row to dst: a replay writes a
// million rows, and building each key as a string of its own was a fifth
// of what its apply allocated.
func appendRowKey(dst []byte, c iam.Change) []byte {
	if c.Kind == iam.ChangeRealm {
		return append(append(dst, rowRealm...), c.Realm...)
	}
	if int(c.Kind) < len(entityRows) && entityRows[c.Kind] != "" {
		dst = append(append(dst, entityRows[c.Kind]...), c.Realm...)
		return append(append(dst, sep...), c.From...)
	}
	if int(c.Kind) < len(edgeRows) && edgeRows[c.Kind] != "" {
		dst = append(append(dst, rowEdge...), c.Realm...)
		dst = append(append(append(dst, sep...), edgeRows[c.Kind]...), sep...)
		return append(append(append(dst, c.From...), sep...), c.To...)
	}
	panic(fmt.Sprintf("replica: no row for change kind %d", c.Kind)) // a kind added to iam but not here
}

// parseKey is the inverse of RowKey; ok is false for a key RowKey never makes.
func parseKey(key string) (c iam.Change, ok bool) {
	if key == "" {
		return c, false
	}
	kind, rest := key[:1], key[1:]
	if kind == rowRealm {
		return iam.Change{Kind: iam.ChangeRealm, Realm: rest}, true
	}
	var parts [4]string
	n := keyFields(rest, &parts)
	if kind == rowEdge {
		if n != 4 {
			return c, false
		}
		for k, name := range edgeRows {
			if name != "" && name == parts[1] {
				return iam.Change{Kind: iam.ChangeKind(k), Realm: parts[0], From: parts[2], To: parts[3]}, true
			}
		}
		return c, false
	}
	if n != 2 {
		return c, false
	}
	for k, name := range entityRows {
		if name != "" && name == kind {
			return iam.Change{Kind: iam.ChangeKind(k), Realm: parts[0], From: parts[1]}, true
		}
	}
	return c, false
}

// keyFields splits the rest of a row key (after its kind) at sep as
// strings.Split would, without allocating: it stores the first len(f)
// fields in f and returns how many there are. Loading a read model parses
// a key per row, and the split's allocations showed in its profile.
func keyFields(rest string, f *[4]string) int {
	for n := 0; ; n++ {
		i := strings.Index(rest, sep)
		if i < 0 {
			if n < len(f) {
				f[n] = rest
			}
			return n + 1
		}
		if n < len(f) {
			f[n] = rest[:i]
		}
		rest = rest[i+len(sep):]
	}
}

// Row values. Their JSON is the on-disk format: fields keep their names and
// their order.
type (
	realmRow struct {
		Name   string `json:"name"`
		System bool   `json:"system,omitempty"`
	}
	identityRow struct {
		Kind         iam.IdentityKind   `json:"kind"`
		Status       iam.IdentityStatus `json:"status"`
		Email        string             `json:"email,omitempty"`
		Name         string             `json:"name,omitempty"`
		PasswordHash string             `json:"passwordHash,omitempty"`
		RedirectURIs []string           `json:"redirectUris,omitempty"`
		Owner        string             `json:"owner,omitempty"`
		// The identity provider's part: sealed personal data, sign-in
		// failures and lock, token revocation, the reset token's hash.
		EmailIndex      string    `json:"emailIndex,omitempty"`
		Sealed          []byte    `json:"sealed,omitempty"`
		FailedSignIns   int       `json:"failedSignIns,omitempty"`
		LockedUntil     time.Time `json:"lockedUntil,omitzero"`
		TokensNotBefore time.Time `json:"tokensNotBefore,omitzero"`
		ResetTokenHash  string    `json:"resetTokenHash,omitempty"`
		ResetExpiresAt  time.Time `json:"resetExpiresAt,omitzero"`
		SelfDeactivated bool      `json:"selfDeactivated,omitempty"`
	}
	nameRow struct {
		Name string `json:"name"`
	}
	policyRow struct {
		Name       string          `json:"name"`
		Statements []iam.Statement `json:"statements"`
	}
	credentialRow struct {
		ClientID   string `json:"clientId"`
		SecretHash string `json:"secretHash"`
		Disabled   bool   `json:"disabled,omitempty"`
	}
	// revokedKeyRow is a revoked signing key, an edge of the system realm
	// keyed by kid.
	revokedKeyRow struct {
		At time.Time `json:"at"`
	}
	authCodeRow struct {
		Client      string    `json:"client"`
		RedirectURI string    `json:"redirectUri"`
		Challenge   string    `json:"challenge"`
		ExpiresAt   time.Time `json:"expiresAt"`
		Redeemed    bool      `json:"redeemed,omitempty"`
		Scope       string    `json:"scope,omitempty"`
		Nonce       string    `json:"nonce,omitempty"`
		AuthTime    time.Time `json:"authTime,omitzero"`
	}
	planRow struct {
		Name     string   `json:"name"`
		Policies []string `json:"policies"`
	}
	invitationRow struct {
		UserID     string    `json:"userId"`
		EmailIndex string    `json:"emailIndex"`
		Sealed     []byte    `json:"sealed,omitempty"`
		Roles      []string  `json:"roles,omitempty"`
		Groups     []string  `json:"groups,omitempty"`
		TokenHash  string    `json:"tokenHash"`
		ExpiresAt  time.Time `json:"expiresAt"`
		InvitedBy  string    `json:"invitedBy,omitempty"`
		Accepted   bool      `json:"accepted,omitempty"`
	}
)

// present is the value of an edge row that carries nothing but its key.
var present = []byte{}

// Row returns the current value of a row key in st, and false when the row
// does not exist (it must then be deleted from the durable form).
func Row(st *iam.State, key string) ([]byte, bool) {
	c, ok := parseKey(key)
	if !ok {
		return nil, false
	}
	return rowValue(st, c)
}

// rowValue returns the value of the row of c, as Row does, but for an edge
// whose change says its value (c.Edge), which it does not look up.
func rowValue(st *iam.State, c iam.Change) ([]byte, bool) {
	switch c.Edge {
	case iam.EdgeAdded:
		return present, true
	case iam.EdgeRemoved:
		return nil, false
	}
	r := st.Realm(c.Realm)
	if r == nil {
		return nil, false
	}
	switch c.Kind {
	case iam.ChangeRealm:
		return mustJSON(realmRow{Name: r.Name, System: r.System}), true
	case iam.ChangeIdentity:
		if id := r.Identities.Get(c.From); id != nil {
			return identityValue(id), true
		}
	case iam.ChangeGroup:
		if g := r.Groups[c.From]; g != nil {
			return mustJSON(nameRow{g.Name}), true
		}
	case iam.ChangePolicy:
		if p := r.Policies[c.From]; p != nil {
			return mustJSON(policyRow{p.Name, p.Statements}), true
		}
	case iam.ChangeProject:
		if p := r.Projects[c.From]; p != nil {
			return mustJSON(nameRow{p.Name}), true
		}
	case iam.ChangeInvitation:
		if inv := r.Invitations[c.From]; inv != nil {
			return mustJSON(invitationRow{inv.UserID, inv.EmailIndex, inv.Sealed, inv.Roles, inv.Groups, inv.TokenHash, inv.ExpiresAt, inv.InvitedBy, inv.Accepted}), true
		}
	case iam.ChangeMember:
		if g := r.Groups[c.From]; g != nil && g.Members.Has(c.To) {
			return present, true
		}
	case iam.ChangeRole:
		if id := r.Identities.Get(c.From); id != nil && id.Roles.Has(c.To) {
			return present, true
		}
	case iam.ChangeAttachment:
		if p := r.Policies[c.To]; p != nil && p.AttachedTo.Has(c.From) {
			return present, true
		}
	case iam.ChangeProjectMember:
		if p := r.Projects[c.From]; p != nil {
			if pols, ok := p.Members[c.To]; ok {
				return mustJSON(pols), true
			}
		}
	case iam.ChangeProjectResource:
		if p := r.Projects[c.From]; p != nil {
			if rel, ok := p.Resources[c.To]; ok {
				return []byte(rel), true
			}
		}
	case iam.ChangeCredential:
		if id := r.Identities.Get(c.From); id != nil {
			if cr, ok := id.AppState().Credentials[c.To]; ok {
				return mustJSON(credentialRow{cr.ClientID, cr.SecretHash, cr.Disabled}), true
			}
		}
	case iam.ChangeAPIKey:
		if id := r.Identities.Get(c.From); id != nil {
			if h, ok := id.AppState().APIKeys[c.To]; ok {
				return []byte(h), true
			}
		}
	case iam.ChangeAPIKeyStatus:
		if id := r.Identities.Get(c.From); id != nil && id.AppState().DisabledAPIKeys.Has(c.To) {
			return present, true
		}
	case iam.ChangeAuthCode:
		if id := r.Identities.Get(c.From); id != nil {
			if ac, ok := id.SignInState().AuthCodes[c.To]; ok {
				return mustJSON(authCodeRow{ac.Client, ac.RedirectURI, ac.Challenge, ac.ExpiresAt, ac.Redeemed, ac.Scope, ac.Nonce, ac.AuthTime}), true
			}
		}
	case iam.ChangeRefreshFamily:
		// The family's JSON is its row: it holds only hashes.
		if id := r.Identities.Get(c.From); id != nil {
			if f, ok := id.SignInState().RefreshFamilies[c.To]; ok {
				return mustJSON(f), true
			}
		}
	case iam.ChangeDefaultProject:
		// An edge of its own rather than a field of the identity row, so
		// that rows written before default projects existed are unchanged.
		if id := r.Identities.Get(c.From); id != nil && c.To != "" && id.AppState().DefaultProject == c.To {
			return present, true
		}
	case iam.ChangeProjectPolicy:
		if p := r.Projects[c.From]; p != nil && p.Policies[c.To] != nil {
			return mustJSON(policyRow{p.Policies[c.To].Name, p.Policies[c.To].Statements}), true
		}
	case iam.ChangeProjectDefaults:
		if p := r.Projects[c.From]; p != nil && c.To == "" && len(p.DefaultMemberPolicies) > 0 {
			return mustJSON(p.DefaultMemberPolicies), true
		}
	case iam.ChangePlan:
		if pl := r.Plans[c.From]; pl != nil && c.To == "" {
			return mustJSON(planRow{pl.Name, pl.Policies}), true
		}
	case iam.ChangePlanAttachment:
		if pl := r.Plans[c.To]; pl != nil && pl.AttachedTo.Has(c.From) {
			return present, true
		}
	case iam.ChangeAppManager, iam.ChangeGroupManager, iam.ChangeProjectManager:
		if ms, ok := st.Managers(c.Realm, iam.ManagedRef{Kind: managedKinds[c.Kind], ID: c.From}); ok && slices.Contains(ms, c.To) {
			return present, true
		}
	case iam.ChangeRevokedKey:
		if k, ok := st.RevokedKey(c.From); ok && k.Realm == c.Realm && c.To == "" {
			return mustJSON(revokedKeyRow{k.At}), true
		}
	case iam.ChangeAppShare:
		if ss, ok := st.Shares(c.Realm, c.From); ok && slices.Contains(ss, c.To) {
			return present, true
		}
	case iam.ChangeResourceNotLinkable:
		if pl := r.Resources[c.To]; pl != nil && pl.NotLinkable && pl.Home == c.From {
			return present, true
		}
	}
	return nil, false
}

// identityValue is the value of id's row.
func identityValue(id *iam.Identity) []byte { return mustJSON(identityRowOf(id)) }

func identityRowOf(id *iam.Identity) identityRow {
	st, app := id.SignInState(), id.AppState()
	return identityRow{id.Kind, id.Status, id.Email, id.Name, id.PasswordHash, app.RedirectURIs, app.Owner,
		id.EmailIndex, id.Sealed, st.FailedSignIns, st.LockedUntil, st.TokensNotBefore, st.ResetTokenHash, st.ResetExpiresAt, id.SelfDeactivated}
}

// identityEncoder encodes identities' rows as identityValue does, into
// one buffer and from one row it reuses: a bulk load writes every identity
// row, and at 100k identities (BenchmarkReplay's flush) a profile gave
// identityValue 0.19 s of CPU, boxing each row for json.Marshal and
// copying out its result most of it; encoded this way, 0.05 s.
type identityEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
	row identityRow
}

func newIdentityEncoder() *identityEncoder {
	e := &identityEncoder{}
	e.enc = json.NewEncoder(&e.buf) // escapes HTML, as json.Marshal does
	return e
}

// value returns the value of id's row, valid until the next call.
func (e *identityEncoder) value(id *iam.Identity) []byte {
	e.row = identityRowOf(id)
	e.buf.Reset()
	if err := e.enc.Encode(&e.row); err != nil {
		panic(fmt.Sprintf("replica: marshal row: %v", err)) // only plain data types, as mustJSON
	}
	return bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")) // Encode ends a value with a newline, Marshal does not
}

// Rows calls fn for every row of st in key order. It is how tests compare
// a state with a stored one; a bulk load (bulk.go) writes the same rows
// faster.
func Rows(st *iam.State, fn func(key string, value []byte) error) error {
	var keys []string
	eachRowKey(st, false, func(k string) { keys = append(keys, k) })
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := Row(st, k)
		if !ok {
			return fmt.Errorf("rows: %q listed but absent", k)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// eachRowKey calls fn with the key of every row of st, in no order; with
// skipOrdered, not those of the kinds keyOrderedRows walks in key order
// itself (orderedKinds).
func eachRowKey(st *iam.State, skipOrdered bool, fn func(key string)) {
	add := func(kind iam.ChangeKind, realm, from, to string) {
		if !skipOrdered || !orderedKinds[kind] {
			fn(RowKey(iam.Change{Kind: kind, Realm: realm, From: from, To: to}))
		}
	}
	for _, rid := range st.RealmIDs() {
		r := st.Realm(rid)
		add(iam.ChangeRealm, rid, "", "")
		for id, ident := range r.Identities.All() {
			add(iam.ChangeIdentity, rid, id, "")
			if !skipOrdered {
				for role := range ident.Roles.All() {
					add(iam.ChangeRole, rid, id, role)
				}
				for pol := range ident.Policies.All() {
					add(iam.ChangeAttachment, rid, id, pol)
				}
			}
			app, signIn := ident.AppState(), ident.SignInState()
			for c := range app.Credentials {
				add(iam.ChangeCredential, rid, id, c)
			}
			for k := range app.APIKeys {
				add(iam.ChangeAPIKey, rid, id, k)
			}
			for k := range app.DisabledAPIKeys.All() {
				add(iam.ChangeAPIKeyStatus, rid, id, k)
			}
			for h := range signIn.AuthCodes {
				add(iam.ChangeAuthCode, rid, id, h)
			}
			if app.DefaultProject != "" {
				add(iam.ChangeDefaultProject, rid, id, app.DefaultProject)
			}
			for m := range app.Managers.All() {
				add(iam.ChangeAppManager, rid, id, m)
			}
			for f := range signIn.RefreshFamilies {
				add(iam.ChangeRefreshFamily, rid, id, f)
			}
			for s := range app.Sharees.All() {
				add(iam.ChangeAppShare, rid, id, s)
			}
		}
		for id, g := range r.Groups {
			add(iam.ChangeGroup, rid, id, "")
			if !skipOrdered {
				for m := range g.Members.All() {
					add(iam.ChangeMember, rid, id, m)
				}
				for pol := range g.Policies.All() {
					add(iam.ChangeAttachment, rid, id, pol)
				}
			}
			for m := range g.Managers.All() {
				add(iam.ChangeGroupManager, rid, id, m)
			}
		}
		for id := range r.Policies {
			add(iam.ChangePolicy, rid, id, "")
		}
		for id, p := range r.Projects {
			add(iam.ChangeProject, rid, id, "")
			for m := range p.Members {
				add(iam.ChangeProjectMember, rid, id, m)
			}
			for h, rel := range p.Resources {
				add(iam.ChangeProjectResource, rid, id, h)
				if pl := r.Resources[h]; rel == iam.RelationHome && pl != nil && pl.NotLinkable {
					add(iam.ChangeResourceNotLinkable, rid, id, h)
				}
			}
			for m := range p.Managers.All() {
				add(iam.ChangeProjectManager, rid, id, m)
			}
			for pol := range p.Policies {
				add(iam.ChangeProjectPolicy, rid, id, pol)
			}
			if len(p.DefaultMemberPolicies) > 0 {
				add(iam.ChangeProjectDefaults, rid, id, "")
			}
		}
		for id, pl := range r.Plans {
			add(iam.ChangePlan, rid, id, "")
			for t := range pl.AttachedTo.All() {
				add(iam.ChangePlanAttachment, rid, t, id)
			}
		}
		for id := range r.Invitations {
			add(iam.ChangeInvitation, rid, id, "")
		}
	}
	for _, kid := range st.RevokedKeys() {
		k, _ := st.RevokedKey(kid)
		add(iam.ChangeRevokedKey, k.Realm, kid, "")
	}
}

// LoadRow rebuilds st from one stored row by applying the events that
// create what the row holds. Rows must come in key order (as Rows and a
// sorted store give them), so entities precede their edges. A row that does
// not fit the state loaded so far is an error, not a panic: it means a
// corrupt read model or snapshot. To load many rows, a RowLoader is faster.
func LoadRow(st *iam.State, key string, value []byte) error {
	l := NewRowLoader(st)
	if err := l.Load([]byte(key), value); err != nil {
		return err
	}
	return l.Finish()
}

// RowLoader loads rows in key order into a state, as LoadRow one at a time
// would, but builds memberships and attachments (nearly every row at scale)
// in bulk: see iam.EdgeLoader. The state is complete only after Finish.
type RowLoader struct {
	st         *iam.State
	edges      *iam.EdgeLoader
	pending    bool                  // edges added since the last flush
	identities map[string]int        // realm → identity rows to come, if known
	created    []iam.IdentityCreated // plain identities not yet loaded (State.LoadIdentities)
	policy     policyRow             // decodePolicy's, reused row after row
	policies   []string              // decodePolicies', likewise
}

// maxCreated bounds the identities a RowLoader holds for one
// State.LoadIdentities: enough that each fills the maps in long runs of
// neighbouring buckets, few enough to hold ~12 MiB of events.
const maxCreated = 1 << 16

// NewRowLoader returns a loader into st.
func NewRowLoader(st *iam.State) *RowLoader {
	return &RowLoader{st: st, edges: iam.NewEdgeLoader(st)}
}

// Load loads one row; errors as LoadRow's. It keeps neither key nor value:
// they may be a store iterator's buffers.
func (l *RowLoader) Load(key, value []byte) error { return l.load(key, value, nil) }

// decodedIdentity is an identity row's value decoded ahead of its load, or
// why it does not decode.
type decodedIdentity struct {
	row identityRow
	err error
}

func isIdentityRow(key []byte) bool { return len(key) > 0 && key[0] == rowIdentity[0] }

// decodeIdentity decodes an identity row's value into the zero d, so that
// load need not: an indexLoader does it on the goroutine that reads the
// rows, where at 1M identities it took a tenth of a restart off the one
// that builds the index.
func decodeIdentity(value []byte, d *decodedIdentity) {
	d.err = decodeRow(value, &d.row)
}

// load loads one row, whose value is decoded already in ident when it is
// an identity's and ident is not nil.
func (l *RowLoader) load(key, value []byte, ident *decodedIdentity) error {
	if realm, edge, from, to, ok := bulkEdge(key); ok {
		if err := l.loadCreated(); err != nil {
			return err
		}
		l.pending = true
		var err error
		if edge == edgeMember[0] {
			err = l.edges.AddMember(realm, from, to)
		} else {
			err = l.edges.Attach(realm, from, to)
		}
		if err != nil {
			return fmt.Errorf("load row %q: %w", key, err)
		}
		return nil
	}
	c, ok := parseKey(string(key))
	if !ok {
		return fmt.Errorf("load row %q: malformed key or unknown row kind", key)
	}
	// Other events may read the sets the pending edges go to.
	l.finishEdges()
	if c.Kind != iam.ChangeRealm && l.st.Realm(c.Realm) == nil {
		return fmt.Errorf("load row %q: unknown realm", key)
	}
	if c.Kind == iam.ChangeIdentity {
		if ident == nil {
			ident = new(decodedIdentity)
			decodeIdentity(value, ident)
		}
		if err := l.loadIdentity(c, ident); err != nil {
			return fmt.Errorf("load row %q: %w", key, err)
		}
		return nil
	}
	if err := l.loadCreated(); err != nil {
		return err
	}
	if err := l.loadRow(c, value); err != nil {
		return fmt.Errorf("load row %q: %w", key, err)
	}
	if c.Kind == iam.ChangeRealm {
		// A realm's row comes before its identities'.
		l.st.ReserveIdentities(c.Realm, l.identities[c.Realm])
	}
	return nil
}

// identityCounts counts the identity rows of each realm in r, for a
// RowLoader to size the realms' maps before it fills them. It reads the
// identity rows a second time; at 1M identities that costs less than
// growing the maps did.
func identityCounts(r reader) (map[string]int, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte(rowIdentity), UpperBound: []byte(rowGroup)})
	if err != nil {
		return nil, fmt.Errorf("count identities: %w", err)
	}
	counts := map[string]int{}
	realm, n := "", 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(rowIdentity):]
		if i := bytes.IndexByte(k, sep[0]); i >= 0 {
			k = k[:i]
		}
		if string(k) != realm {
			counts[realm] += n
			realm, n = string(k), 0
		}
		n++
	}
	counts[realm] += n
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("count identities: %w", err)
	}
	return counts, nil
}

// bulkEdge splits the key of a membership or attachment row, the rows
// EdgeLoader takes, without making strings of its fields: ok is false for
// any other key (parseKey then judges it).
func bulkEdge(key []byte) (realm []byte, edge byte, from, to []byte, ok bool) {
	if len(key) == 0 || key[0] != rowEdge[0] {
		return nil, 0, nil, nil, false
	}
	var f [4][]byte
	rest := key[1:]
	for i := range 3 {
		j := bytes.IndexByte(rest, sep[0])
		if j < 0 {
			return nil, 0, nil, nil, false
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if bytes.IndexByte(rest, sep[0]) >= 0 || len(f[1]) != 1 || (f[1][0] != edgeMember[0] && f[1][0] != edgeAttachment[0]) {
		return nil, 0, nil, nil, false
	}
	return f[0], f[1][0], f[2], rest, true
}

// loadIdentity loads an identity's row: a plain one (active, and nothing
// but its creation to replay) joins those loaded together, any other is
// replayed at once, after them.
func (l *RowLoader) loadIdentity(c iam.Change, ident *decodedIdentity) error {
	if ident.err != nil {
		return ident.err
	}
	in := iam.InRealm{Realm: c.Realm}
	if created, plain := createdOnly(in, c.From, ident.row); plain {
		if l.created = append(l.created, created); len(l.created) == maxCreated {
			return l.loadCreated()
		}
		return nil
	}
	if err := l.loadCreated(); err != nil {
		return err
	}
	if err := loadIdentity(l.st, in, c.From, ident.row); err != nil {
		return err
	}
	l.edges.IdentityLoaded(c.Realm, l.st.Realm(c.Realm).Identities.Get(c.From))
	return nil
}

// loadCreated loads the plain identities held.
func (l *RowLoader) loadCreated() error {
	if len(l.created) == 0 {
		return nil
	}
	ids, err := l.st.LoadIdentities(l.created)
	if err != nil {
		return fmt.Errorf("load identity rows: %w", err)
	}
	for i, id := range ids {
		l.edges.IdentityLoaded(l.created[i].Realm, id)
	}
	clear(l.created)
	l.created = l.created[:0]
	return nil
}

// Finish completes the state with the rows loaded so far. Errors as
// LoadRow's.
func (l *RowLoader) Finish() error {
	err := l.loadCreated()
	l.finishEdges()
	return err
}

// finishEdges adds the edges loaded so far.
func (l *RowLoader) finishEdges() {
	if l.pending {
		l.edges.Flush()
		l.pending = false
	}
}

// decodePolicy decodes a policy's row into l.policy, whose lists it
// reuses: decoded afresh, segmentio gives each list room for ten, and
// that was 82 MB of the 518 MB a load of the workload snapshot allocated
// (820k rows). The row is valid until the next call; the applies copy the
// statements (iam.cloneStatements). A list the row leaves out comes back
// empty rather than nil: the rows this package writes always carry both.
func (l *RowLoader) decodePolicy(value []byte) (*policyRow, error) {
	row := &l.policy
	row.Name = ""
	kept := row.Statements[:cap(row.Statements)]
	for i := range kept {
		kept[i] = iam.Statement{Actions: kept[i].Actions[:0], Resources: kept[i].Resources[:0]}
	}
	row.Statements = kept[:0]
	return row, decodeRow(value, row)
}

// decodePolicies decodes a row that lists policies (a project member's,
// a project's defaults) into l.policies, reused as decodePolicy reuses
// its row: 136k project members of the workload snapshot each decoded
// into a list made for ten. The applies copy the list.
func (l *RowLoader) decodePolicies(value []byte) ([]string, error) {
	l.policies = l.policies[:0]
	err := decodeRow(value, &l.policies)
	return l.policies, err
}

func (l *RowLoader) loadRow(c iam.Change, value []byte) error {
	st := l.st
	apply := func(evs ...iam.Event) error { return st.ApplyEvents(evs, nil) }
	in := iam.InRealm{Realm: c.Realm}
	r := st.Realm(c.Realm)
	from, to := c.From, c.To
	switch c.Kind {
	case iam.ChangeRealm:
		var row realmRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		return apply(iam.RealmCreated{InRealm: in, Name: row.Name, System: &row.System})
	case iam.ChangeGroup:
		var row nameRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		return apply(iam.GroupCreated{InRealm: in, ID: from, Name: row.Name})
	case iam.ChangePolicy:
		row, err := l.decodePolicy(value)
		if err != nil {
			return err
		}
		return apply(iam.PolicyCreated{InRealm: in, ID: from, Name: row.Name, Statements: row.Statements})
	case iam.ChangeProject:
		var row nameRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		return apply(iam.ProjectCreated{InRealm: in, ID: from, Name: row.Name})
	case iam.ChangeInvitation:
		var row invitationRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		inv := iam.Invitation{UserID: row.UserID, EmailIndex: row.EmailIndex, Sealed: row.Sealed, Roles: row.Roles, Groups: row.Groups,
			TokenHash: row.TokenHash, ExpiresAt: row.ExpiresAt, InvitedBy: row.InvitedBy}
		if err := apply(iam.InvitationCreated{InRealm: in, ID: from, Invitation: inv}); err != nil || !row.Accepted {
			return err
		}
		return apply(iam.InvitationAccepted{InRealm: in, ID: from, User: row.UserID})
	case iam.ChangeProjectMember:
		pols, err := l.decodePolicies(value)
		if err != nil {
			return err
		}
		if r.Projects[from] == nil || (r.Groups[to] == nil && r.Identities.Get(to) == nil) {
			return fmt.Errorf("project membership of missing entities")
		}
		if err := memberPolicies(r, r.Projects[from], pols); err != nil {
			return fmt.Errorf("project membership %w", err)
		}
		return apply(iam.ProjectMemberSet{InRealm: in, Project: from, Member: to, Policies: pols})
	case iam.ChangeProjectResource:
		if r.Projects[from] == nil {
			return fmt.Errorf("resource of a missing project")
		}
		return apply(iam.ProjectResourceAdded{InRealm: in, Project: from, HRN: to, Relation: iam.Relation(value)})
	case iam.ChangeProjectPolicy:
		row, err := l.decodePolicy(value)
		if err != nil {
			return err
		}
		if r.Projects[from] == nil {
			return fmt.Errorf("policy of a missing project")
		}
		return apply(iam.ProjectPolicyCreated{InRealm: in, Project: from, ID: to, Name: row.Name, Statements: row.Statements})
	case iam.ChangeProjectDefaults:
		pols, err := l.decodePolicies(value)
		if err != nil {
			return err
		}
		if r.Projects[from] == nil || to != "" {
			return fmt.Errorf("default member policies of a missing project")
		}
		if err := memberPolicies(r, r.Projects[from], pols); err != nil {
			return fmt.Errorf("default member policies %w", err)
		}
		return apply(iam.ProjectDefaultsSet{InRealm: in, Project: from, Policies: pols})
	case iam.ChangePlan:
		var row planRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		if to != "" {
			return fmt.Errorf("plan row with a target")
		}
		for _, p := range row.Policies {
			if r.Policies[p] == nil {
				return fmt.Errorf("plan uses missing policy %q", p)
			}
		}
		return apply(iam.PlanCreated{InRealm: in, ID: from, Name: row.Name, Policies: row.Policies})
	case iam.ChangePlanAttachment:
		if r.Plans[to] == nil || (r.Groups[from] == nil && r.Identities.Get(from) == nil) {
			return fmt.Errorf("plan attachment of missing entities")
		}
		return apply(iam.PlanAttached{InRealm: in, Target: from, Plan: to})
	case iam.ChangeAppManager, iam.ChangeGroupManager, iam.ChangeProjectManager:
		kind := managedKinds[c.Kind]
		if _, ok := st.Managers(c.Realm, iam.ManagedRef{Kind: kind, ID: from}); !ok || (r.Groups[to] == nil && r.Identities.Get(to) == nil) {
			return fmt.Errorf("manager edge of missing entities")
		}
		return apply(iam.ManagerAdded{InRealm: in, Kind: kind, ID: from, Manager: to})
	case iam.ChangeRevokedKey:
		var row revokedKeyRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		if to != "" {
			return fmt.Errorf("revoked key row with a second end")
		}
		return apply(iam.SigningKeyRevoked{InRealm: in, KID: from, At: row.At})
	case iam.ChangeAppShare:
		if _, ok := st.Shares(c.Realm, from); !ok || (r.Groups[to] == nil && r.Identities.Get(to) == nil) {
			return fmt.Errorf("share edge of missing entities")
		}
		return apply(iam.AppShared{InRealm: in, App: from, With: to})
	case iam.ChangeResourceNotLinkable:
		if p := r.Projects[from]; p == nil || p.Resources[to] != iam.RelationHome {
			return fmt.Errorf("not-linkable mark of a resource not at home in project %q", from)
		}
		return apply(iam.ResourceLinkableSet{InRealm: in, Project: from, HRN: to, Linkable: false})
	}
	// The remaining edges belong to an identity.
	if r.Identities.Get(from) == nil {
		return fmt.Errorf("%s edge of a missing identity", edgeRows[c.Kind])
	}
	switch c.Kind {
	case iam.ChangeRole:
		return apply(iam.RoleGranted{InRealm: in, Identity: from, Role: to})
	case iam.ChangeCredential:
		var row credentialRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		if err := apply(iam.CredentialAdded{InRealm: in, App: from, CredentialID: to, ClientID: row.ClientID, SecretHash: row.SecretHash}); err != nil || !row.Disabled {
			return err
		}
		return apply(iam.CredentialStatusChanged{InRealm: in, App: from, CredentialID: to, Disabled: true})
	case iam.ChangeAPIKey:
		return apply(iam.APIKeyAdded{InRealm: in, App: from, KeyID: to, KeyHash: string(value)})
	case iam.ChangeAPIKeyStatus:
		return apply(iam.APIKeyStatusChanged{InRealm: in, App: from, KeyID: to, Disabled: true})
	case iam.ChangeAuthCode:
		var row authCodeRow
		if err := decodeRow(value, &row); err != nil {
			return err
		}
		// At is left zero: issuing prunes the codes expired at At, and
		// none of the loaded ones is.
		return apply(iam.AuthCodeIssued{InRealm: in, User: from, CodeHash: to,
			Code: iam.AuthCode{Client: row.Client, RedirectURI: row.RedirectURI, Challenge: row.Challenge, ExpiresAt: row.ExpiresAt, Redeemed: row.Redeemed,
				Scope: row.Scope, Nonce: row.Nonce, AuthTime: row.AuthTime}})
	case iam.ChangeRefreshFamily:
		var f iam.RefreshFamily
		if err := decodeRow(value, &f); err != nil {
			return err
		}
		// At is left zero, as for codes: nothing loaded is pruned.
		return apply(iam.RefreshFamilyStarted{InRealm: in, User: from, ID: to, Family: f})
	case iam.ChangeDefaultProject:
		if r.Projects[to] == nil {
			return fmt.Errorf("default project %q is missing", to)
		}
		return apply(iam.DefaultProjectSet{InRealm: in, App: from, Project: to})
	}
	return fmt.Errorf("unknown row kind")
}

// memberPolicies checks that every policy of a stored member assignment (or
// default) of project p is loaded already: a realm policy, or p's own.
func memberPolicies(r *iam.Realm, p *iam.Project, pols []string) error {
	for _, pol := range pols {
		if r.MemberPolicy(p, pol) == nil {
			return fmt.Errorf("uses missing policy %q", pol)
		}
	}
	return nil
}

// maxLoadedFailures bounds the failed sign-ins a row may claim: they are
// replayed one event each, and a corrupt count must not stall a load.
const maxLoadedFailures = 1 << 16

// loadIdentity recreates an identity from its row: created as it was, then
// brought to its status, sign-in failures and lock, token revocation and
// reset token by the events that make them.
func loadIdentity(st *iam.State, in iam.InRealm, id string, row identityRow) error {
	if row.FailedSignIns < 0 || row.FailedSignIns > maxLoadedFailures {
		return fmt.Errorf("failed sign-ins %d out of range", row.FailedSignIns)
	}
	created, _ := createdOnly(in, id, row)
	evs := make([]iam.Event, 0, 4)
	evs = append(evs, created)
	switch row.Status {
	case iam.StatusActive:
	case iam.StatusDeactivated:
		evs = append(evs, iam.IdentityStatusChanged{InRealm: in, ID: id, Status: row.Status, BySelf: row.SelfDeactivated})
	case iam.StatusDeleted:
		evs = append(evs, iam.IdentityDeleted{InRealm: in, ID: id})
	default:
		return fmt.Errorf("unknown identity status %q", row.Status)
	}
	if !row.LockedUntil.IsZero() {
		evs = append(evs, iam.SignInFailed{InRealm: in, User: id, LockedUntil: row.LockedUntil})
	}
	for range row.FailedSignIns {
		evs = append(evs, iam.SignInFailed{InRealm: in, User: id})
	}
	if !row.TokensNotBefore.IsZero() {
		evs = append(evs, iam.TokensRevoked{InRealm: in, Identity: id, Before: row.TokensNotBefore})
	}
	if row.ResetTokenHash != "" {
		evs = append(evs, iam.PasswordResetRequested{InRealm: in, User: id, TokenHash: row.ResetTokenHash, ExpiresAt: row.ResetExpiresAt})
	}
	return st.ApplyEvents(evs, nil)
}

// createdOnly returns the event that creates the identity of row, and
// whether it is all the row holds: an active identity with no sign-in
// failures, lock, token revocation nor reset token.
func createdOnly(in iam.InRealm, id string, row identityRow) (iam.IdentityCreated, bool) {
	e := iam.IdentityCreated{InRealm: in, ID: id, Kind: row.Kind, Email: row.Email, Name: row.Name,
		PasswordHash: row.PasswordHash, RedirectURIs: row.RedirectURIs, Owner: row.Owner,
		EmailIndex: row.EmailIndex, Sealed: row.Sealed}
	return e, row.Status == iam.StatusActive && row.FailedSignIns == 0 && row.LockedUntil.IsZero() &&
		row.TokensNotBefore.IsZero() && row.ResetTokenHash == ""
}

// decodeRow decodes a row's JSON value. segmentio's decoder keeps
// encoding/json's behaviour but compiles a decoder per type instead of
// reflecting over each field: with encoding/json, identity rows (one per
// identity) took 2.3 s of a 16.5 s restart at 10M grants, at ~2 µs a row
// against ~0.5 µs.
func decodeRow(value []byte, v any) error { return segjson.Unmarshal(value, v) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("replica: marshal row: %v", err)) // only plain data types are marshalled
	}
	return b
}
