package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

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

// lookupDigest names one lookup of one realm, for its page tokens.
func lookupDigest(realm, action, resource, scope string) string {
	b, _ := json.Marshal([]string{realm, action, resource, scope}) // strings always marshal
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func (t pageToken) String() string {
	b, _ := json.Marshal(t) // a struct of strings and a number always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func parsePageToken(s, digest string) (pageToken, error) {
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.After == "" {
		return t, iam.FieldErrorf("pageToken", "is not a page token of this API")
	}
	if t.Lookup != digest {
		return t, iam.FieldErrorf("pageToken", "belongs to another lookup: send the same action, resource and scope as for the first page")
	}
	return t, nil
}

// lookupSubjects answers POST /v1/lookup/subjects: who in the caller's
// realm may do an action on a resource, each with its check's reason. It
// tells about every identity's access, so it needs what checking another
// subject needs (checkAccess), on the realm.
func (s *Server) lookupSubjects(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	var in lookupRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	// Judged first as the replica is, so a caller without the right learns
	// nothing from how its input is judged, and again on the state the
	// answer comes from.
	authorize := func(st *iam.State) error {
		return iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionCheckAccess, iam.RealmHRN(p.Realm))
	}
	if _, err := rep.Read(r.Context(), replica.Consistency{Mode: iam.MinimizeLatency}, authorize); err != nil {
		return err
	}
	if in.Action == "" || len(in.Action) > iam.MaxActionLength {
		return iam.FieldErrorf("action", "must be an action name of 1 to %d characters", iam.MaxActionLength)
	}
	if _, err := iam.ParseHRN("resource", in.Resource); err != nil {
		return err
	}
	var scope string
	if in.Scope != "" {
		if scope, err = iam.ProjectIDFromHRN("scope", p.Realm, in.Scope); err != nil {
			return err
		}
	}
	size := defaultLookupPageSize
	if in.PageSize != nil {
		if *in.PageSize < 1 || *in.PageSize > maxLookupPageSize {
			return iam.FieldErrorf("pageSize", "must be from 1 to %d", maxLookupPageSize)
		}
		size = *in.PageSize
	}
	c, err := parseConsistency(in.Consistency)
	if err != nil {
		return err
	}
	digest := lookupDigest(p.Realm, in.Action, in.Resource, scope)
	var after string
	if in.PageToken != "" {
		t, err := parsePageToken(in.PageToken, digest)
		if err != nil {
			return err
		}
		after = t.After
		// A later page is read at least as fresh as the page before it:
		// the order by id and the cursor give each subject once, and no
		// page goes back in time. (It may be later: a change between
		// pages shows in the pages after it; each page's token says
		// where it was read.)
		switch c.Mode {
		case iam.MinimizeLatency:
			c = replica.Consistency{Mode: iam.AtLeastAsFresh, Token: t.Seq, Wait: c.Wait}
		case iam.AtLeastAsFresh:
			c.Token = max(c.Token, t.Seq)
		}
	}
	var subjects []iam.Subject
	var more bool
	seq, err := rep.Read(r.Context(), c, func(st *iam.State) error {
		if err := authorize(st); err != nil {
			return err
		}
		subjects, more = st.LookupSubjects(p.Realm, in.Action, in.Resource, scope, after, size)
		return nil
	})
	if err != nil {
		return err
	}
	out := lookupResponse{Subjects: subjects, Region: rep.Region(), ConsistencyToken: FormatToken(seq)}
	if out.Subjects == nil {
		out.Subjects = []iam.Subject{} // a list, even when empty
	}
	if more {
		out.NextPageToken = pageToken{Seq: seq, After: subjects[len(subjects)-1].ID, Lookup: digest}.String()
	}
	w.Header().Set("Consistency-Token", out.ConsistencyToken)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseConsistency reads a body's consistency object as /v1/check does;
// absent, it is minimize_latency. Errors name the field.
func parseConsistency(in *consistencyBody) (replica.Consistency, error) {
	c := replica.Consistency{Mode: iam.MinimizeLatency}
	if in == nil {
		return c, nil
	}
	c.Mode = in.Mode
	switch c.Mode {
	case iam.MinimizeLatency, iam.FullyConsistent:
	case iam.AtLeastAsFresh:
		if in.Token == "" {
			return c, iam.FieldErrorf("consistency.token", "is required for at_least_as_fresh")
		}
	default:
		return c, iam.FieldErrorf("consistency.mode", "%q is not one of minimize_latency, at_least_as_fresh, fully_consistent", c.Mode)
	}
	if in.Token != "" {
		seq, err := ParseToken("consistency.token", in.Token)
		if err != nil {
			return c, err
		}
		c.Token = seq
	}
	if ms := in.WaitMs; ms != nil {
		if *ms < 0 || *ms > maxWaitMs {
			return c, iam.FieldErrorf("consistency.waitMs", "must be from 0 to %d", maxWaitMs)
		}
		c.Wait = time.Duration(*ms) * time.Millisecond
		if *ms == 0 {
			c.Wait = time.Nanosecond // answer now or say the replica is behind
		}
	}
	return c, nil
}

func (s *Server) lookupRoutes(h handle) {
	h("POST /v1/lookup/subjects", true, s.lookupSubjects)
}
