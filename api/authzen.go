package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	iam "github.com/iam-project/iam"
)

// The OpenID AuthZEN Authorization API 1.0: the decisions of /v1/check
// (decideChecks) and the who-can lookup (lookup) through the standard PDP
// interface. The mapping and semantics are in docs/authzen.md.

// The AuthZEN endpoints, at the spec's default paths.
const (
	authzenEvaluationPath    = "/access/v1/evaluation"
	authzenEvaluationsPath   = "/access/v1/evaluations"
	authzenSearchSubjectPath = "/access/v1/search/subject"
	authzenSearchActionPath  = "/access/v1/search/action"
)

// maxEvaluations bounds one boxcarred request; each item costs a check.
const maxEvaluations = 1000

// The evaluations semantics of the spec (options.evaluations_semantic).
const (
	executeAll          = "execute_all"
	denyOnFirstDeny     = "deny_on_first_deny"
	permitOnFirstPermit = "permit_on_first_permit"
)

// azEntity is an AuthZEN subject or resource; properties are accepted and
// not used (iam decides on its own state).
type azEntity struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type azAction struct {
	Name string `json:"name"`
}

// azContext is what iam reads of a request's context; any other key is
// accepted and not used.
type azContext struct {
	Scope       string           `json:"scope"`
	Consistency *consistencyBody `json:"consistency"`
}

type azEvaluation struct {
	Subject  *azEntity  `json:"subject"`
	Action   *azAction  `json:"action"`
	Resource *azEntity  `json:"resource"`
	Context  *azContext `json:"context"`
}

type azEvaluationsRequest struct {
	azEvaluation
	Evaluations []azEvaluation `json:"evaluations"`
	Options     *struct {
		EvaluationsSemantic string `json:"evaluations_semantic"`
	} `json:"options"`
}

// azDecision is one decision; Context carries the check's reason and, for
// a single evaluation, where and at which position it was answered.
type azDecision struct {
	Decision bool             `json:"decision"`
	Context  azDecisionDetail `json:"context"`
}

type azDecisionDetail struct {
	Reason           string `json:"reason"`
	Region           string `json:"region,omitempty"`
	ConsistencyToken string `json:"consistencyToken,omitempty"`
}

// azAnswerContext is where and at which position a whole boxcar or search
// page was answered.
type azAnswerContext struct {
	Region           string `json:"region"`
	ConsistencyToken string `json:"consistencyToken"`
}

type azEvaluationsResponse struct {
	Evaluations []azDecision    `json:"evaluations"`
	Context     azAnswerContext `json:"context"`
}

func (s *Server) authzenRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /.well-known/authzen-configuration", s.authzenConfiguration)
	for path, fn := range map[string]func(http.ResponseWriter, *http.Request) error{
		authzenEvaluationPath:    s.authzenEvaluation,
		authzenEvaluationsPath:   s.authzenEvaluations,
		authzenSearchSubjectPath: s.authzenSearchSubject,
		authzenSearchActionPath:  s.authzenSearchAction,
	} {
		// Same authentication as /v1/check: a bearer token or an API key.
		m.Handle("POST "+path, echoRequestID(s.authed(true, fn)))
	}
}

// echoRequestID returns the request's X-Request-ID on its answer, errors
// included, as the spec requires of a PDP.
func echoRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Request-ID"); id != "" {
			w.Header().Set("X-Request-ID", id)
		}
		next.ServeHTTP(w, r)
	})
}

// authzenConfiguration answers the PDP metadata: the issuer is the PDP's
// identifier, so the endpoints are named under it.
func (s *Server) authzenConfiguration(w http.ResponseWriter, r *http.Request) {
	pdp := s.issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"policy_decision_point":       pdp,
		"access_evaluation_endpoint":  pdp + authzenEvaluationPath,
		"access_evaluations_endpoint": pdp + authzenEvaluationsPath,
		"search_subject_endpoint":     pdp + authzenSearchSubjectPath,
		"search_action_endpoint":      pdp + authzenSearchActionPath,
	})
}

// decodeTolerant reads a JSON object as the spec asks: bounded size, no
// trailing data, unknown members ignored (properties, another PEP's
// context keys); errors are invalid_argument naming the field.
func decodeTolerant(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return iam.FieldErrorf("body", "a JSON body is required")
	}
	if trimmed[0] != '{' {
		return iam.FieldErrorf("body", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return iam.FieldErrorf("body", "unexpected data after the JSON object")
	}
	return nil
}

// subjectKind maps an AuthZEN subject type to an identity kind.
func subjectKind(field, typ string) (iam.IdentityKind, error) {
	switch iam.IdentityKind(typ) {
	case iam.KindUser, iam.KindApp:
		return iam.IdentityKind(typ), nil
	case "":
		return "", iam.FieldErrorf(field, "is required: user or app")
	}
	return "", iam.FieldErrorf(field, "%q is not a subject type of iam: user or app", typ)
}

// checkOf maps one evaluation, its omitted keys taken from defaults, to a
// check; prefix ("" or "evaluations[i].") names its fields in errors. The
// consistency is the request's, never an item's. Errors in the subject
// are returned, as no caller can be authorized without it; the others are
// left in the check, judged once the caller is authorized.
func checkOf(e, defaults azEvaluation, prefix string) (checkInput, error) {
	if e.Subject == nil {
		e.Subject = defaults.Subject
	}
	if e.Action == nil {
		e.Action = defaults.Action
	}
	if e.Resource == nil {
		e.Resource = defaults.Resource
	}
	if e.Context == nil {
		e.Context = defaults.Context
	}
	required := "is required"
	if prefix != "" {
		required += " (here or as the top-level default)"
	}
	switch {
	case e.Subject == nil:
		return checkInput{}, iam.FieldErrorf(prefix+"subject", "%s", required)
	case e.Subject.ID == "":
		return checkInput{}, iam.FieldErrorf(prefix+"subject.id", "is required: the identity's id")
	}
	kind, err := subjectKind(prefix+"subject.type", e.Subject.Type)
	if err != nil {
		return checkInput{}, err
	}
	in := checkInput{Subject: e.Subject.ID, Kind: kind,
		fields: checkFields{Subject: prefix + "subject.id", Action: prefix + "action.name", Resource: prefix + "resource.id", Scope: prefix + "context.scope"}}
	switch {
	case e.Action == nil:
		in.invalid = iam.FieldErrorf(prefix+"action", "%s", required)
	case e.Resource == nil:
		in.invalid = iam.FieldErrorf(prefix+"resource", "%s", required)
	case e.Resource.Type == "":
		in.invalid = iam.FieldErrorf(prefix+"resource.type", "is required")
	case prefix != "" && e.Context != defaults.Context && e.Context.Consistency != nil:
		in.invalid = iam.FieldErrorf(prefix+"context.consistency", "a batch is answered at one position: give consistency in the top-level context")
	default:
		in.Action, in.Resource = e.Action.Name, e.Resource.ID
	}
	if e.Context != nil {
		in.Scope = e.Context.Scope
	}
	return in, nil
}

func consistencyOf(c *azContext) *consistencyBody {
	if c == nil {
		return nil
	}
	return c.Consistency
}

// authzenEvaluation answers POST /access/v1/evaluation as /v1/check
// answers the same check.
func (s *Server) authzenEvaluation(w http.ResponseWriter, r *http.Request) error {
	var in azEvaluation
	if err := decodeTolerant(w, r, &in); err != nil {
		return err
	}
	return s.authzenSingle(w, r, in)
}

func (s *Server) authzenSingle(w http.ResponseWriter, r *http.Request, in azEvaluation) error {
	q, err := checkOf(in, azEvaluation{}, "")
	if err != nil {
		return err
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	ds, seq, err := s.decideChecks(r, rep, []checkInput{q}, consistencyOf(in.Context), "context.consistency", nil)
	if err != nil {
		return err
	}
	tok := FormatToken(seq)
	w.Header().Set("Consistency-Token", tok)
	writeJSON(w, http.StatusOK, azDecision{Decision: ds[0].Allowed,
		Context: azDecisionDetail{Reason: ds[0].Reason(), Region: rep.Region(), ConsistencyToken: tok}})
	return nil
}

// authzenEvaluations answers POST /access/v1/evaluations: every item one
// check, all answered in one read of the replica at one position.
func (s *Server) authzenEvaluations(w http.ResponseWriter, r *http.Request) error {
	var in azEvaluationsRequest
	if err := decodeTolerant(w, r, &in); err != nil {
		return err
	}
	if len(in.Evaluations) == 0 {
		// The spec: without evaluations, the request is one evaluation.
		return s.authzenSingle(w, r, in.azEvaluation)
	}
	if len(in.Evaluations) > maxEvaluations {
		return iam.FieldErrorf("evaluations", "has %d items; at most %d are answered in one request", len(in.Evaluations), maxEvaluations)
	}
	var stop func(iam.Decision) bool
	if in.Options != nil {
		switch in.Options.EvaluationsSemantic {
		case "", executeAll:
		case denyOnFirstDeny:
			stop = func(d iam.Decision) bool { return !d.Allowed }
		case permitOnFirstPermit:
			stop = func(d iam.Decision) bool { return d.Allowed }
		default:
			return iam.FieldErrorf("options.evaluations_semantic", "%q is not one of %s, %s, %s", in.Options.EvaluationsSemantic, executeAll, denyOnFirstDeny, permitOnFirstPermit)
		}
	}
	qs := make([]checkInput, len(in.Evaluations))
	for i, e := range in.Evaluations {
		var err error
		if qs[i], err = checkOf(e, in.azEvaluation, "evaluations["+strconv.Itoa(i)+"]."); err != nil {
			return err
		}
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	ds, seq, err := s.decideChecks(r, rep, qs, consistencyOf(in.Context), "context.consistency", stop)
	if err != nil {
		return err
	}
	out := azEvaluationsResponse{Evaluations: make([]azDecision, len(ds)), Context: azAnswerContext{Region: rep.Region(), ConsistencyToken: FormatToken(seq)}}
	for i, d := range ds {
		out.Evaluations[i] = azDecision{Decision: d.Allowed, Context: azDecisionDetail{Reason: d.Reason()}}
	}
	w.Header().Set("Consistency-Token", out.Context.ConsistencyToken)
	writeJSON(w, http.StatusOK, out)
	return nil
}
