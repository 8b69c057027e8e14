package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	iam "github.com/iam-project/iam"
)

// AccessChange is one change of an identity's effective permissions: the
// entry at Token that made it, who and when, what was gained and lost, and
// the entry's events (redacted JSON).
type AccessChange struct {
	Token  string           `json:"token"`
	Time   time.Time        `json:"time"`
	Actor  string           `json:"actor"`
	Gained []iam.Permission `json:"gained"`
	Lost   []iam.Permission `json:"lost"`
	Events []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
}

// AccessChanges lists the changes of identity's effective permissions
// made after from up to to (GET /v1/identities/{id}/accessChanges); empty
// tokens mean the first entry and the log's head.
func (c *Client) AccessChanges(ctx context.Context, identity, from, to string) ([]AccessChange, error) {
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	var out struct {
		Changes []AccessChange `json:"changes"`
	}
	req := &request{method: http.MethodGet, path: "/v1/identities/" + url.PathEscape(identity) + "/accessChanges", query: q, read: true}
	if _, err := c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return out.Changes, nil
}

// SimulateRequest is a dry run (POST /v1/simulate): proposed writes as they
// would be sent to the API, and checks to answer before and after them.
type SimulateRequest struct {
	Changes []SimulatedChange `json:"changes"`
	Checks  []SimulatedCheck  `json:"checks,omitempty"`
}

// SimulatedChange is one proposed write.
type SimulatedChange struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// SimulatedCheck is a check answered before and after the changes.
type SimulatedCheck struct {
	Subject  string `json:"subject,omitempty"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Scope    string `json:"scope,omitempty"`
}

// SimulateResponse says whose permissions the changes would change, the
// checks' answers before and after, and which changes would be refused.
type SimulateResponse struct {
	Affected []struct {
		IdentityID string           `json:"identityId"`
		Gained     []iam.Permission `json:"gained"`
		Lost       []iam.Permission `json:"lost"`
	} `json:"affected"`
	Checks []struct {
		Before bool   `json:"before"`
		After  bool   `json:"after"`
		Reason string `json:"reason"`
	} `json:"checks"`
	Errors []struct {
		Index  int    `json:"index"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Field  string `json:"field,omitempty"`
	} `json:"errors"`
	ConsistencyToken string `json:"consistencyToken"`
}

// Simulate runs a dry run: nothing is written.
func (c *Client) Simulate(ctx context.Context, q SimulateRequest) (SimulateResponse, error) {
	var out SimulateResponse
	if _, err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/simulate", body: q}, &out); err != nil {
		return SimulateResponse{}, err
	}
	return out, nil
}
