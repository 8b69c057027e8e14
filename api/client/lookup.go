package client

import (
	"context"
	"net/http"

	iam "github.com/iam-project/iam"
)

// LookupRequest asks who in the caller's realm may do Action on Resource
// (POST /v1/lookup/subjects). The caller needs checkAccess on the realm.
type LookupRequest struct {
	Action   string
	Resource string
	// Scope is a project HRN: a resource in a project is reached only by a
	// lookup scoped to a project holding it, as for a check.
	Scope string
	// Consistency is as for Check; a later page (PageToken set) is read at
	// least as fresh as the page before it, whatever the mode.
	Consistency Consistency
	// PageSize is the most subjects in one answer (0: the server's
	// default, 100; at most 1,000).
	PageSize int
	// PageToken is the NextPageToken of the page before, with the same
	// Action, Resource and Scope.
	PageToken string
}

// Subject is an identity a lookup found, with the reason its check gives.
type Subject = iam.Subject

// LookupResponse is one page of a lookup, in order of subject id.
type LookupResponse struct {
	Subjects []Subject `json:"subjects"`
	// NextPageToken is empty on the last page.
	NextPageToken string `json:"nextPageToken"`
	// Region answered, at the log position ConsistencyToken.
	Region           string `json:"region"`
	ConsistencyToken string `json:"consistencyToken"`
}

type lookupBody struct {
	Action      string           `json:"action"`
	Resource    string           `json:"resource"`
	Scope       string           `json:"scope,omitempty"`
	Consistency *consistencyBody `json:"consistency,omitempty"`
	PageSize    int              `json:"pageSize,omitempty"`
	PageToken   string           `json:"pageToken,omitempty"`
}

// LookupSubjects reads one page of "who can", retrying and failing over as
// Check does; a Session sends its token as it does for checks. Errors are
// *Error answers (permission_denied without checkAccess, invalid_argument
// naming the field, replica_behind) or transport errors.
func (c *Client) LookupSubjects(ctx context.Context, q LookupRequest) (LookupResponse, error) {
	b := lookupBody{Action: q.Action, Resource: q.Resource, Scope: q.Scope, PageSize: q.PageSize, PageToken: q.PageToken}
	cons := q.Consistency
	if tok := c.SessionToken(); tok != "" && (cons.Mode == "" || cons.Mode == AtLeastAsFresh) {
		cons.Mode, cons.Token = AtLeastAsFresh, newestToken(cons.Token, tok)
	} else if cons.Mode == "" && cons.Token != "" {
		cons.Mode = AtLeastAsFresh
	}
	if cons.Mode != "" {
		b.Consistency = &consistencyBody{Mode: cons.Mode, Token: cons.Token}
		if cons.Wait > 0 {
			ms := max(1, cons.Wait.Milliseconds())
			b.Consistency.WaitMs = &ms
		}
	}
	var out LookupResponse
	req := &request{method: http.MethodPost, path: "/v1/lookup/subjects", body: b, read: true, extra: cons.Wait}
	if cons.Mode == AtLeastAsFresh {
		req.freshAs = cons.Token
	}
	if _, err := c.do(ctx, req, &out); err != nil {
		return LookupResponse{}, err
	}
	c.observe(out.ConsistencyToken)
	return out, nil
}
