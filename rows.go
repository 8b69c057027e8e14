package iam

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The read model's durable form is a set of rows (key → value) derived from
// the state: one row per entity and one per edge, so that an event touches
// only small rows. Keys sort realms first, then entities, then edges, so a
// state can be loaded back in key order.
const (
	rowRealm    = "1"
	rowIdentity = "2"
	rowGroup    = "3"
	rowPolicy   = "4"
	rowProject  = "5"
	rowEdge     = "6"
	sep         = "\x00"

	edgeMember          = "m"
	edgeRole            = "r"
	edgeAttachment      = "a"
	edgeProjectMember   = "pm"
	edgeProjectResource = "pr"
	edgeCredential      = "c"
	edgeAPIKey          = "k"
)

// keyFields splits the rest of a row key (after its kind) at sep as
// strings.Split would, without allocating: it stores the first len(f)
// fields in f and returns how many there are. Replaying a log reads a row
// per event, and the split's allocations showed in its profile.
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

func realmKey(r string) string        { return rowRealm + r }
func identityKey(r, id string) string { return rowIdentity + r + sep + id }
func groupKey(r, id string) string    { return rowGroup + r + sep + id }
func policyKey(r, id string) string   { return rowPolicy + r + sep + id }
func projectKey(r, id string) string  { return rowProject + r + sep + id }
func edgeKey(r, kind, from, to string) string {
	return rowEdge + r + sep + kind + sep + from + sep + to
}

type realmRow struct {
	Name string `json:"name"`
}

type identityRow struct {
	Kind         IdentityKind   `json:"kind"`
	Status       IdentityStatus `json:"status"`
	Email        string         `json:"email,omitempty"`
	Name         string         `json:"name,omitempty"`
	PasswordHash string         `json:"passwordHash,omitempty"`
	RedirectURIs []string       `json:"redirectUris,omitempty"`
	Owner        string         `json:"owner,omitempty"`
	identityAuthRow
}

type nameRow struct {
	Name string `json:"name"`
}

type policyRow struct {
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
}

// Row returns the current value of a row key, and false when the row does
// not exist (it must then be deleted from the durable form).
func (s *State) Row(key string) ([]byte, bool) {
	if key == "" {
		return nil, false
	}
	kind, rest := key[:1], key[1:]
	if kind == rowRealm {
		r := s.realms[rest]
		if r == nil {
			return nil, false
		}
		return mustJSON(realmRow{Name: r.Name}), true
	}
	var parts [4]string
	n := keyFields(rest, &parts)
	r := s.realms[parts[0]]
	if r == nil || n < 2 {
		return nil, false
	}
	switch kind {
	case rowIdentity:
		if id := r.Identities[parts[1]]; id != nil {
			return mustJSON(identityRow{id.Kind, id.Status, id.Email, id.Name, id.PasswordHash, id.RedirectURIs, id.Owner, authRowOf(id)}), true
		}
	case rowGroup:
		if g := r.Groups[parts[1]]; g != nil {
			return mustJSON(nameRow{g.Name}), true
		}
	case rowPolicy:
		if p := r.Policies[parts[1]]; p != nil {
			return mustJSON(policyRow{p.Name, p.Statements}), true
		}
	case rowProject:
		if p := r.Projects[parts[1]]; p != nil {
			return mustJSON(nameRow{p.Name}), true
		}
	case rowEdge:
		if n != 4 {
			return nil, false
		}
		return r.edgeRow(parts[1], parts[2], parts[3])
	case rowInvitation:
		return r.invitationRow(parts[1])
	}
	return nil, false
}

func (r *Realm) edgeRow(kind, from, to string) ([]byte, bool) {
	switch kind {
	case edgeMember:
		if g := r.Groups[from]; g != nil && g.Members.has(to) {
			return []byte{}, true
		}
	case edgeRole:
		if id := r.Identities[from]; id != nil && id.Roles.has(to) {
			return []byte{}, true
		}
	case edgeAttachment:
		if p := r.Policies[to]; p != nil && p.AttachedTo.has(from) {
			return []byte{}, true
		}
	case edgeProjectMember:
		if p := r.Projects[from]; p != nil {
			if pols, ok := p.Members[to]; ok {
				return mustJSON(pols), true
			}
		}
	case edgeProjectResource:
		if p := r.Projects[from]; p != nil {
			if rel, ok := p.Resources[to]; ok {
				return []byte(rel), true
			}
		}
	case edgeCredential:
		if id := r.Identities[from]; id != nil {
			if c, ok := id.Credentials[to]; ok {
				return mustJSON(c), true
			}
		}
	case edgeAPIKey:
		if id := r.Identities[from]; id != nil {
			if h, ok := id.APIKeys[to]; ok {
				return []byte(h), true
			}
		}
	default:
		return r.authEdgeRow(kind, from, to)
	}
	return nil, false
}

// Rows calls fn for every row of the state in key order. It is how a read
// model is written from scratch and how tests compare a state with a stored one.
func (s *State) Rows(fn func(key string, value []byte) error) error {
	var keys []string
	for rid, r := range s.realms {
		keys = append(keys, realmKey(rid))
		for id, ident := range r.Identities {
			keys = append(keys, identityKey(rid, id))
			for role := range ident.Roles {
				keys = append(keys, edgeKey(rid, edgeRole, id, role))
			}
			for pol := range ident.Policies {
				keys = append(keys, edgeKey(rid, edgeAttachment, id, pol))
			}
			for c := range ident.Credentials {
				keys = append(keys, edgeKey(rid, edgeCredential, id, c))
			}
			for k := range ident.APIKeys {
				keys = append(keys, edgeKey(rid, edgeAPIKey, id, k))
			}
		}
		for id, g := range r.Groups {
			keys = append(keys, groupKey(rid, id))
			for m := range g.Members {
				keys = append(keys, edgeKey(rid, edgeMember, id, m))
			}
			for pol := range g.Policies {
				keys = append(keys, edgeKey(rid, edgeAttachment, id, pol))
			}
		}
		for id := range r.Policies {
			keys = append(keys, policyKey(rid, id))
		}
		for id, p := range r.Projects {
			keys = append(keys, projectKey(rid, id))
			for m := range p.Members {
				keys = append(keys, edgeKey(rid, edgeProjectMember, id, m))
			}
			for h := range p.Resources {
				keys = append(keys, edgeKey(rid, edgeProjectResource, id, h))
			}
		}
		keys = r.authRowKeys(keys)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := s.Row(k)
		if !ok {
			return fmt.Errorf("rows: %q listed but absent", k)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// LoadRow rebuilds state from one stored row. Rows must come in key order
// (as Rows and a sorted store give them), so entities precede their edges.
func (s *State) LoadRow(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("load row: empty key")
	}
	kind, rest := key[:1], key[1:]
	if kind == rowRealm {
		var row realmRow
		if err := json.Unmarshal(value, &row); err != nil {
			return fmt.Errorf("load realm %q: %w", rest, err)
		}
		s.apply(RealmCreated{InRealm: InRealm{rest}, Name: row.Name}, func(string) {})
		return nil
	}
	var parts [4]string
	n := keyFields(rest, &parts)
	realm := parts[0]
	if s.realms[realm] == nil || n < 2 {
		return fmt.Errorf("load row %q: unknown realm or malformed key", key)
	}
	in, nop := InRealm{realm}, func(string) {}
	var err error
	switch kind {
	case rowIdentity:
		var row identityRow
		if err = json.Unmarshal(value, &row); err == nil {
			s.apply(IdentityCreated{InRealm: in, ID: parts[1], Kind: row.Kind, Email: row.Email, Name: row.Name,
				PasswordHash: row.PasswordHash, RedirectURIs: row.RedirectURIs, Owner: row.Owner,
				EmailIndex: row.EmailIndex, Sealed: row.Sealed}, nop)
			s.realms[realm].Identities[parts[1]].Status = row.Status
			s.realms[realm].loadAuthRow(s.realms[realm].Identities[parts[1]], row.identityAuthRow)
		}
	case rowGroup:
		var row nameRow
		if err = json.Unmarshal(value, &row); err == nil {
			s.apply(GroupCreated{InRealm: in, ID: parts[1], Name: row.Name}, nop)
		}
	case rowPolicy:
		var row policyRow
		if err = json.Unmarshal(value, &row); err == nil {
			s.apply(PolicyCreated{InRealm: in, ID: parts[1], Name: row.Name, Statements: row.Statements}, nop)
		}
	case rowProject:
		var row nameRow
		if err = json.Unmarshal(value, &row); err == nil {
			s.apply(ProjectCreated{InRealm: in, ID: parts[1], Name: row.Name}, nop)
		}
	case rowEdge:
		if n != 4 {
			return fmt.Errorf("load row %q: malformed edge key", key)
		}
		err = s.loadEdge(in, parts[1], parts[2], parts[3], value)
	case rowInvitation:
		err = s.loadInvitation(in, parts[1], value)
	default:
		return fmt.Errorf("load row %q: unknown row kind", key)
	}
	if err != nil {
		return fmt.Errorf("load row %q: %w", key, err)
	}
	return nil
}

func (s *State) loadEdge(in InRealm, kind, from, to string, value []byte) error {
	nop := func(string) {}
	r := s.realms[in.Realm]
	switch kind {
	case edgeMember:
		if r.Groups[from] == nil || r.Identities[to] == nil {
			return fmt.Errorf("membership of missing entities")
		}
		s.apply(MemberAdded{InRealm: in, Group: from, Identity: to}, nop)
	case edgeRole:
		if r.Identities[from] == nil {
			return fmt.Errorf("role of a missing identity")
		}
		s.apply(RoleGranted{InRealm: in, Identity: from, Role: to}, nop)
	case edgeAttachment:
		if r.Policies[to] == nil || (r.Groups[from] == nil && r.Identities[from] == nil) {
			return fmt.Errorf("attachment of missing entities")
		}
		s.apply(PolicyAttached{InRealm: in, Target: from, Policy: to}, nop)
	case edgeProjectMember:
		var pols []string
		if err := json.Unmarshal(value, &pols); err != nil {
			return err
		}
		if r.Projects[from] == nil || (r.Groups[to] == nil && r.Identities[to] == nil) {
			return fmt.Errorf("project membership of missing entities")
		}
		for _, p := range pols {
			if r.Policies[p] == nil {
				return fmt.Errorf("project membership uses missing policy %q", p)
			}
		}
		s.apply(ProjectMemberSet{InRealm: in, Project: from, Member: to, Policies: pols}, nop)
	case edgeProjectResource:
		if r.Projects[from] == nil {
			return fmt.Errorf("resource of a missing project")
		}
		s.apply(ProjectResourceAdded{InRealm: in, Project: from, HRN: to, Relation: Relation(value)}, nop)
	case edgeCredential:
		var c Credential
		if err := json.Unmarshal(value, &c); err != nil {
			return err
		}
		if r.Identities[from] == nil {
			return fmt.Errorf("credential of a missing app")
		}
		s.apply(CredentialAdded{InRealm: in, App: from, CredentialID: to, ClientID: c.ClientID, SecretHash: c.SecretHash}, nop)
		r.Identities[from].Credentials[to] = c // with its status
	case edgeAPIKey:
		if r.Identities[from] == nil {
			return fmt.Errorf("API key of a missing app")
		}
		s.apply(APIKeyAdded{InRealm: in, App: from, KeyID: to, KeyHash: string(value)}, nop)
	default:
		return s.loadAuthEdge(in, kind, from, to, value)
	}
	return nil
}

// SetSeq records the sequence a loaded state corresponds to.
func (s *State) SetSeq(seq uint64) { s.seq = seq }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("iam: marshal row: %v", err)) // only plain data types are marshalled
	}
	return b
}
