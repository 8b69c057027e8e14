package client

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
)

// Consistency modes of a check (API.md, Checks), as defined by package iam.
const (
	MinimizeLatency = iam.MinimizeLatency
	AtLeastAsFresh  = iam.AtLeastAsFresh
	FullyConsistent = iam.FullyConsistent
)

// Consistency is how fresh a check's answer must be.
type Consistency struct {
	// Mode is one of MinimizeLatency, AtLeastAsFresh, FullyConsistent;
	// empty is MinimizeLatency, or, in a Session that has seen a token,
	// AtLeastAsFresh that token.
	Mode string
	// Token is the consistency token the answer must be at least as fresh as.
	Token string
	// Wait bounds how long the region waits for its replica before it
	// answers 503 replica_behind (0: the server's default).
	Wait time.Duration
}

// CheckRequest asks whether Subject may do Action on Resource.
type CheckRequest struct {
	// Subject is an identity id; empty is the caller itself.
	Subject string
	// SubjectToken, in place of Subject, is an access token the caller
	// received from its own caller: the check is about that token's
	// subject, in its scope (a token that is not valid is denied).
	SubjectToken string
	Action       string
	Resource     string
	// Scope is a project HRN. A check of another Subject is scoped to it;
	// one's own check, or a SubjectToken's, takes the token's scope, and a
	// Scope that differs from it is refused (invalid_argument).
	Scope       string
	Consistency Consistency
}

// CheckResponse is a check's answer.
type CheckResponse struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	// Region answered, at the log position ConsistencyToken.
	Region           string `json:"region"`
	ConsistencyToken string `json:"consistencyToken"`
	// Endpoint is the endpoint that answered.
	Endpoint string `json:"-"`
}

type checkBody struct {
	Subject      string           `json:"subject,omitempty"`
	SubjectToken string           `json:"subjectToken,omitempty"`
	Action       string           `json:"action"`
	Resource     string           `json:"resource"`
	Scope        string           `json:"scope,omitempty"`
	Consistency  *consistencyBody `json:"consistency,omitempty"`
}

type consistencyBody struct {
	Mode   string `json:"mode"`
	Token  string `json:"token,omitempty"`
	WaitMs *int64 `json:"waitMs,omitempty"`
}

// Check asks the nearest region that can answer, retrying and failing over
// as the package doc describes. Errors are *Error answers (permission_denied
// when checking another subject without the right, replica_behind when no
// region reached the token within the budget, ...) or transport errors.
func (c *Client) Check(ctx context.Context, q CheckRequest) (CheckResponse, error) {
	b := checkBody{Subject: q.Subject, SubjectToken: q.SubjectToken, Action: q.Action, Resource: q.Resource, Scope: q.Scope}
	cons := q.Consistency
	if cons.Mode == "" {
		if tok := c.SessionToken(); tok != "" {
			cons.Mode, cons.Token = AtLeastAsFresh, newestToken(tok, cons.Token)
		} else if cons.Token != "" {
			cons.Mode = AtLeastAsFresh
		}
	} else if cons.Mode == AtLeastAsFresh {
		cons.Token = newestToken(cons.Token, c.SessionToken())
	}
	if cons.Mode != "" {
		b.Consistency = &consistencyBody{Mode: cons.Mode, Token: cons.Token}
		if cons.Wait > 0 {
			ms := max(1, cons.Wait.Milliseconds())
			b.Consistency.WaitMs = &ms
		}
	}
	var out CheckResponse
	req := &request{method: http.MethodPost, path: "/v1/check", body: b, read: true, extra: cons.Wait}
	if cons.Mode == AtLeastAsFresh {
		// The caller's own token is judged at least as fresh as the check
		// (an app reactivated by the write the token names is not refused).
		req.freshAs = cons.Token
	}
	m, err := c.do(ctx, req, &out)
	if err != nil {
		return CheckResponse{}, err
	}
	out.Endpoint = m.Endpoint
	c.observe(out.ConsistencyToken)
	return out, nil
}

// Session is a Client that remembers the latest consistency token it has
// seen — from its writes and from its reads' answers — and sends it with
// every later read: a check made after a write through the same Session
// reflects that write, in any region (read-your-writes, monotonic reads).
// It is safe for concurrent use; the remembered token only moves forward.
type Session struct {
	*Client
}

// Session returns a new session over c's endpoints, connections and counters.
func (c *Client) Session() *Session {
	cp := *c
	cp.session = &sessionState{}
	return &Session{Client: &cp}
}

// Token is the latest consistency token the session has seen.
func (s *Session) Token() string { return s.SessionToken() }

// Observe makes the session at least as fresh as tok (a token learnt
// elsewhere, say from another service's write).
func (s *Session) Observe(tok string) { s.observe(tok) }

// newerToken reports whether a is later than b. Tokens are opaque to
// clients, but the server's own ("ct1.<base-36 sequence>") are ordered; a
// token of another form is taken as newer than what came before it.
func newerToken(a, b string) bool {
	if b == "" {
		return a != ""
	}
	sa, oka := tokenSeq(a)
	sb, okb := tokenSeq(b)
	if oka && okb {
		return sa > sb
	}
	return a != ""
}

func newestToken(a, b string) string {
	if newerToken(b, a) {
		return b
	}
	return a
}

func tokenSeq(t string) (uint64, bool) {
	rest, ok := strings.CutPrefix(t, "ct1.")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 36, 64)
	return n, err == nil
}
