package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	iam "github.com/iam-project/iam"
)

// azPage is a search request's page object.
type azPage struct {
	Token string `json:"token"`
	Limit *int   `json:"limit"`
}

type azSearchRequest struct {
	Subject  *azEntity  `json:"subject"`
	Action   *azAction  `json:"action"`
	Resource *azEntity  `json:"resource"`
	Context  *azContext `json:"context"`
	Page     *azPage    `json:"page"`
}

// azPageOut is a search answer's page: next_token is "" on the last page.
type azPageOut struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

// azFound is one search result; properties.reason is the check's reason
// for a subject.
type azFound struct {
	Type       string            `json:"type,omitempty"`
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

type azSearchResponse struct {
	Page    azPageOut       `json:"page"`
	Context azAnswerContext `json:"context"`
	Results []azFound       `json:"results"`
}

func (p *azPage) token() string {
	if p == nil {
		return ""
	}
	return p.Token
}

func (p *azPage) limit() *int {
	if p == nil {
		return nil
	}
	return p.Limit
}

// limitPart is the page limit as a part of a lookup's digest: the spec
// asks that it not change between pages.
func limitPart(l *int) string {
	if l == nil {
		return ""
	}
	return strconv.Itoa(*l)
}

// authzenSearchSubject answers POST /access/v1/search/subject: the
// who-can lookup of /v1/lookup/subjects, for subjects of one type.
func (s *Server) authzenSearchSubject(w http.ResponseWriter, r *http.Request) error {
	var in azSearchRequest
	if err := decodeTolerant(w, r, &in); err != nil {
		return err
	}
	switch {
	case in.Subject == nil:
		return iam.FieldErrorf("subject", "is required: {\"type\": \"user\" or \"app\"}")
	case in.Action == nil:
		return iam.FieldErrorf("action", "is required")
	case in.Resource == nil:
		return iam.FieldErrorf("resource", "is required")
	case in.Resource.Type == "":
		return iam.FieldErrorf("resource.type", "is required")
	}
	kind, err := subjectKind("subject.type", in.Subject.Type)
	if err != nil {
		return err
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	q := lookupQuery{Action: in.Action.Name, Resource: in.Resource.ID, Kind: kind, PageSize: in.Page.limit(), PageToken: in.Page.token(),
		Same:   []string{limitPart(in.Page.limit())},
		fields: lookupFields{Action: "action.name", Resource: "resource.id", Scope: "context.scope", Consistency: "context.consistency", PageSize: "page.limit", PageToken: "page.token"}}
	if in.Context != nil {
		q.Scope, q.Consistency = in.Context.Scope, in.Context.Consistency
	}
	page, err := s.lookup(r, rep, q)
	if err != nil {
		return err
	}
	out := azSearchResponse{Page: azPageOut{NextToken: page.next, Count: len(page.subjects)},
		Context: azAnswerContext{Region: rep.Region(), ConsistencyToken: FormatToken(page.seq)}, Results: []azFound{}}
	for _, sub := range page.subjects {
		out.Results = append(out.Results, azFound{Type: string(sub.Kind), ID: sub.ID, Properties: map[string]string{"reason": sub.Reason}})
	}
	w.Header().Set("Consistency-Token", out.Context.ConsistencyToken)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// authzenSearchAction answers POST /access/v1/search/action: the actions
// named in the subject's effective permissions that a check of the
// subject on the resource allows, in name order. A wildcard grant ("*")
// names no action of its own: iam has no closed list of actions.
func (s *Server) authzenSearchAction(w http.ResponseWriter, r *http.Request) error {
	var in azSearchRequest
	if err := decodeTolerant(w, r, &in); err != nil {
		return err
	}
	// Checked as an evaluation with no action is: the same subject,
	// resource, scope and rights.
	q, err := checkOf(azEvaluation{Subject: in.Subject, Action: &azAction{}, Resource: in.Resource, Context: in.Context}, azEvaluation{}, "")
	if err != nil {
		return err
	}
	q.fields.Action = "" // the search names none
	size := defaultLookupPageSize
	if l := in.Page.limit(); l != nil {
		if *l < 1 || *l > maxLookupPageSize {
			return iam.FieldErrorf("page.limit", "must be from 1 to %d", maxLookupPageSize)
		}
		size = *l
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	plan, err := s.planChecks(r, rep, []checkInput{q}, consistencyOf(in.Context), "context.consistency")
	if err != nil {
		return err
	}
	pc := plan.pending[0]
	digest := lookupDigest(pc.q.Realm, "actions", pc.q.Subject, pc.q.Resource, pc.q.Scope, limitPart(in.Page.limit()))
	var after string
	if tok := in.Page.token(); tok != "" {
		t, err := parsePageToken("page.token", tok, digest)
		if err != nil {
			return err
		}
		after = t.After
		plan.c = laterPage(plan.c, t.Seq)
	}
	var names []string
	var more bool
	seq, err := plan.read(r, rep, func(st *iam.State) {
		names, more = allowedActions(st, pc, after, size)
	})
	if err != nil {
		return err
	}
	out := azSearchResponse{Page: azPageOut{Count: len(names)},
		Context: azAnswerContext{Region: rep.Region(), ConsistencyToken: FormatToken(seq)}, Results: []azFound{}}
	for _, n := range names {
		out.Results = append(out.Results, azFound{Name: n})
	}
	if more {
		out.Page.NextToken = pageToken{Seq: seq, After: names[len(names)-1], Lookup: digest}.String()
	}
	w.Header().Set("Consistency-Token", out.Context.ConsistencyToken)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// allowedActions is up to size actions after `after`, in name order, that
// pc's subject may do on its resource, and whether there are more.
func allowedActions(st *iam.State, pc pendingCheck, after string, size int) ([]string, bool) {
	perms, err := st.Permissions(pc.q.Realm, pc.q.Subject)
	if err != nil {
		return nil, false // an unknown subject may do nothing
	}
	var names []string
	for _, p := range perms {
		if p.Effect == iam.Allow && !strings.Contains(p.Action, "*") && p.Action > after {
			names = append(names, p.Action)
		}
	}
	slices.Sort(names)
	var out []string
	for _, n := range slices.Compact(names) {
		if !pc.decide(st, n).Allowed {
			continue
		}
		if len(out) == size {
			return out, true
		}
		out = append(out, n)
	}
	return out, false
}
