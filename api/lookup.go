package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// Page sizes of POST /v1/lookup/subjects.
const (
	defaultLookupPageSize = 100
	maxLookupPageSize     = 1000
)

type lookupRequest struct {
	Action      string           `json:"action"`
	Resource    string           `json:"resource"`
	Scope       string           `json:"scope"`
	Consistency *consistencyBody `json:"consistency"`
	PageSize    *int             `json:"pageSize"`
	PageToken   string           `json:"pageToken"`
}

type consistencyBody struct {
	Mode   string `json:"mode"`
	Token  string `json:"token"`
	WaitMs *int   `json:"waitMs"`
}

type lookupResponse struct {
	Subjects         []iam.Subject `json:"subjects"`
	NextPageToken    string        `json:"nextPageToken,omitempty"`
	ConsistencyToken string        `json:"consistencyToken"`
	Region           string        `json:"region"`
}

// pageToken is what an opaque page token of a lookup holds: the position
// the previous page was read at, the last id it gave, and a digest of the
// lookup it belongs to, so that a token cannot carry one lookup's position
// into another.
type pageToken struct {
	Seq    uint64 `json:"s"`
	After  string `json:"a"`
	Lookup string `json:"l"`
}

// lookupDigest names one lookup of one realm (its realm, action,
// resource, scope and any more parts), for its page tokens.
func lookupDigest(parts ...string) string {
	b, _ := json.Marshal(parts) // strings always marshal
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func (t pageToken) String() string {
	b, _ := json.Marshal(t) // a struct of strings and a number always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func parsePageToken(field, s, digest string) (pageToken, error) {
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.After == "" {
		return t, iam.FieldErrorf(field, "is not a page token of this API")
	}
	if t.Lookup != digest {
		return t, iam.FieldErrorf(field, "belongs to another lookup: send the same request as for the first page, but for its page token")
	}
	return t, nil
}

// lookupSubjects answers POST /v1/lookup/subjects.
func (s *Server) lookupSubjects(w http.ResponseWriter, r *http.Request) error {
	var in lookupRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	page, err := s.lookup(r, rep, lookupQuery{Action: in.Action, Resource: in.Resource, Scope: in.Scope,
		Consistency: in.Consistency, PageSize: in.PageSize, PageToken: in.PageToken, fields: v1LookupFields})
	if err != nil {
		return err
	}
	out := lookupResponse{Subjects: page.subjects, NextPageToken: page.next, Region: rep.Region(), ConsistencyToken: FormatToken(page.seq)}
	if out.Subjects == nil {
		out.Subjects = []iam.Subject{} // a list, even when empty
	}
	w.Header().Set("Consistency-Token", out.ConsistencyToken)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// lookupFields names a lookup's fields in its errors, as the request
// shape spells them.
type lookupFields struct {
	Action, Resource, Scope, Consistency, PageSize, PageToken string
}

var v1LookupFields = lookupFields{Action: "action", Resource: "resource", Scope: "scope", Consistency: "consistency", PageSize: "pageSize", PageToken: "pageToken"}

// lookupQuery is one page of a who-can lookup as a client asks it.
type lookupQuery struct {
	Action, Resource, Scope string
	// Kind, when set, keeps only subjects of that kind.
	Kind        iam.IdentityKind
	Consistency *consistencyBody
	PageSize    *int
	PageToken   string
	// Same lists what else must not change between pages (AuthZEN: the
	// page limit).
	Same   []string
	fields lookupFields
}

type lookupPage struct {
	subjects []iam.Subject
	next     string // the next page's token; "" after the last page
	seq      uint64 // the position the page was read at
}

// lookup is the one who-can path of /v1/lookup/subjects and AuthZEN's
// subject search: who in the caller's realm may do an action on a
// resource, each with its check's reason, one page read at one position.
// It tells about every identity's access, so it needs what checking
// another subject needs (checkAccess), on the realm.
func (s *Server) lookup(r *http.Request, rep Replica, in lookupQuery) (lookupPage, error) {
	p := principal(r)
	// Judged first as the replica is, so a caller without the right learns
	// nothing from how its input is judged, and again on the state the
	// answer comes from.
	authorize := func(st *iam.State) error {
		return iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionCheckAccess, iam.RealmHRN(p.Realm))
	}
	if _, err := rep.Read(r.Context(), replica.Consistency{Mode: iam.MinimizeLatency}, authorize); err != nil {
		return lookupPage{}, err
	}
	if in.Action == "" || len(in.Action) > iam.MaxActionLength {
		return lookupPage{}, iam.FieldErrorf(in.fields.Action, "must be an action name of 1 to %d characters", iam.MaxActionLength)
	}
	if _, err := iam.ParseHRN(in.fields.Resource, in.Resource); err != nil {
		return lookupPage{}, err
	}
	var scope string
	if in.Scope != "" {
		var err error
		if scope, err = iam.ProjectIDFromHRN(in.fields.Scope, p.Realm, in.Scope); err != nil {
			return lookupPage{}, err
		}
	}
	size := defaultLookupPageSize
	if in.PageSize != nil {
		if *in.PageSize < 1 || *in.PageSize > maxLookupPageSize {
			return lookupPage{}, iam.FieldErrorf(in.fields.PageSize, "must be from 1 to %d", maxLookupPageSize)
		}
		size = *in.PageSize
	}
	c, err := parseConsistency(in.fields.Consistency, in.Consistency, false)
	if err != nil {
		return lookupPage{}, err
	}
	digest := lookupDigest(append([]string{p.Realm, in.Action, in.Resource, scope, string(in.Kind)}, in.Same...)...)
	var after string
	if in.PageToken != "" {
		t, err := parsePageToken(in.fields.PageToken, in.PageToken, digest)
		if err != nil {
			return lookupPage{}, err
		}
		after = t.After
		c = laterPage(c, t.Seq)
	}
	var out lookupPage
	var more bool
	out.seq, err = rep.Read(r.Context(), c, func(st *iam.State) error {
		if err := authorize(st); err != nil {
			return err
		}
		out.subjects, more = lookupKind(st, p.Realm, in.Action, in.Resource, scope, after, size, in.Kind)
		return nil
	})
	if err != nil {
		return lookupPage{}, err
	}
	if more {
		out.next = pageToken{Seq: out.seq, After: out.subjects[len(out.subjects)-1].ID, Lookup: digest}.String()
	}
	return out, nil
}

// lookupKind is State.LookupSubjects keeping only subjects of kind ("":
// any), each page filled as far as the lookup goes.
func lookupKind(st *iam.State, realm, action, resource, scope, after string, size int, kind iam.IdentityKind) ([]iam.Subject, bool) {
	if kind == "" {
		return st.LookupSubjects(realm, action, resource, scope, after, size)
	}
	var out []iam.Subject
	for {
		batch, more := st.LookupSubjects(realm, action, resource, scope, after, size-len(out))
		for _, sub := range batch {
			if sub.Kind == kind {
				out = append(out, sub)
			}
		}
		if !more || len(out) == size {
			return out, more
		}
		after = batch[len(batch)-1].ID
	}
}

func (s *Server) lookupRoutes(h handle) {
	h("POST /v1/lookup/subjects", true, s.lookupSubjects)
}

// laterPage is the consistency a later page is read at: at least as fresh
// as the page before it, read at seq. The order and the cursor give each
// item once, and no page goes back in time. (It may be later: a change
// between pages shows in the pages after it; each page's token says where
// it was read.)
func laterPage(c replica.Consistency, seq uint64) replica.Consistency {
	switch c.Mode {
	case iam.MinimizeLatency:
		return replica.Consistency{Mode: iam.AtLeastAsFresh, Token: seq, Wait: c.Wait}
	case iam.AtLeastAsFresh:
		c.Token = max(c.Token, seq)
	}
	return c
}
