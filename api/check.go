package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

type checkRequest struct {
	Subject string `json:"subject"`
	// SubjectToken, in place of Subject, is an access token the caller
	// received from its own caller: subject and scope are that token's.
	SubjectToken string           `json:"subjectToken"`
	Action       string           `json:"action"`
	Resource     string           `json:"resource"`
	Scope        string           `json:"scope"`
	Consistency  *consistencyBody `json:"consistency"`
}

type checkResponse struct {
	Allowed          bool   `json:"allowed"`
	Reason           string `json:"reason"`
	Region           string `json:"region"`
	ConsistencyToken string `json:"consistencyToken"`
}

// maxWaitMs bounds consistency.waitMs.
const maxWaitMs = 30_000

func (s *Server) check(w http.ResponseWriter, r *http.Request) error {
	var in checkRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.SubjectToken != "" && in.Subject != "" {
		return iam.FieldErrorf("subjectToken", "is given in place of subject, not with it")
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	q := checkInput{Subject: in.Subject, SubjectToken: in.SubjectToken, Action: in.Action, Resource: in.Resource, Scope: in.Scope, fields: v1CheckFields}
	ds, seq, err := s.decideChecks(r, rep, []checkInput{q}, in.Consistency, "consistency", nil)
	if err != nil {
		return err
	}
	tok := FormatToken(seq)
	w.Header().Set("Consistency-Token", tok)
	writeJSON(w, http.StatusOK, checkResponse{Allowed: ds[0].Allowed, Reason: ds[0].Reason(), Region: rep.Region(), ConsistencyToken: tok})
	return nil
}

// checkFields names a check's fields in its errors, as the request shape
// spells them: /v1/check's flat body or an AuthZEN evaluation's objects.
type checkFields struct {
	Subject, Action, Resource, Scope string
}

var v1CheckFields = checkFields{Subject: "subject", Action: "action", Resource: "resource", Scope: "scope"}

// checkInput is one check as a client asks it, before it is judged.
type checkInput struct {
	Subject string
	// SubjectToken, in place of Subject: an access token whose subject and
	// scope are checked.
	SubjectToken string
	// Kind, when set, is the kind the subject must be (AuthZEN's
	// subject.type); a subject of another kind is denied.
	Kind     iam.IdentityKind
	Action   string
	Resource string
	Scope    string
	fields   checkFields
	// invalid, if set, is what is wrong with the input besides its
	// subject, returned once the caller is authorized.
	invalid error
}

// pendingCheck is a checkInput judged as far as it can be before the read
// that answers it.
type pendingCheck struct {
	q     iam.CheckRequest
	kind  iam.IdentityKind
	other bool // a subject other than the caller, checked by right
	// subject is the verified subjectToken's identity, judged again on the
	// state the answer comes from.
	subject *Principal
	denied  string // why the subjectToken does not stand, if it does not
}

// decideChecks is the one decision path of /v1/check and AuthZEN's
// evaluations: every check judged, then answered in one replica read, so
// that all answers are at the one position it returns. stop, if set, ends
// the evaluation after the decision it returns true for (AuthZEN's
// short-circuiting semantics); the decisions returned are those made, in
// order.
func (s *Server) decideChecks(r *http.Request, rep Replica, ins []checkInput, cons *consistencyBody, consField string, stop func(iam.Decision) bool) ([]iam.Decision, uint64, error) {
	start := time.Now()
	plan, err := s.planChecks(r, rep, ins, cons, consField)
	if err != nil {
		return nil, 0, err
	}
	ds := make([]iam.Decision, 0, len(ins))
	seq, err := plan.read(r, rep, func(st *iam.State) {
		for _, pc := range plan.pending {
			d := pc.decide(st, pc.q.Action)
			ds = append(ds, d)
			if stop != nil && stop(d) {
				break
			}
		}
	})
	if err != nil {
		return nil, 0, err
	}
	if s.metrics != nil {
		for _, d := range ds {
			s.metrics.checks.WithLabelValues(rep.Region(), allowedLabel(d.Allowed)).Inc()
		}
	}
	// One observation a request: a boxcar is answered by one read.
	s.metrics.observeCheck(rep.Region(), plan.c.Mode, start)
	return ds, seq, nil
}

// checkPlan is checks judged as far as they can be before the one read
// that answers them.
type checkPlan struct {
	pending   []pendingCheck
	authorize func(*iam.State) error
	c         replica.Consistency
}

// planChecks judges every input: the caller (authenticated once, by
// authed) is authorized once per subject it checks by right, on this
// region's replica, before any input is judged; then each action,
// resource and scope, and the consistency. A shape without an action
// field (AuthZEN's action search) leaves the action to the read.
func (s *Server) planChecks(r *http.Request, rep Replica, ins []checkInput, cons *consistencyBody, consField string) (*checkPlan, error) {
	p := principal(r)
	plan := &checkPlan{pending: make([]pendingCheck, len(ins))}
	var others []string // subjects checked by right, each once
	for i, in := range ins {
		pc := &plan.pending[i]
		pc.kind = in.Kind
		// The scope is that of the subject's own token when the subject
		// checks itself or is named by its token (HERE: project resources
		// need a project-scoped token, so a body scope cannot widen an
		// unscoped one), the body's when another subject is checked by
		// right.
		pc.q.Realm, pc.q.Scope = p.Realm, projectScope(p.Scope)
		switch {
		case in.SubjectToken != "":
			subject, err := s.tokenPrincipal(r, in.SubjectToken)
			if iam.ErrorCode(err) == iam.EUnauthenticated {
				// The caller is who it says; its caller's token is not: a
				// denial, as for a subject that is deactivated or unknown.
				pc.denied = "subjectToken: " + iam.ErrorMessage(err)
			} else if err != nil {
				return nil, err
			}
			pc.subject = &subject
			pc.q.Subject, pc.q.Realm, pc.q.Scope = subject.ID, subject.Realm, projectScope(subject.Scope)
		case in.Subject == "":
			pc.q.Subject = p.ID
		default:
			pc.q.Subject = in.Subject
		}
		if pc.denied == "" {
			if err := iam.ValidID(in.fields.Subject, pc.q.Subject); err != nil {
				return nil, err
			}
		}
		// The holder of a subjectToken may ask what its subject may do: it
		// could as well send the token as its own bearer token.
		pc.other = in.SubjectToken == "" && pc.q.Subject != p.ID
		if pc.other && !slices.Contains(others, pc.q.Subject) {
			others = append(others, pc.q.Subject)
		}
	}
	// Checking another identity's access is itself a permission, judged on
	// this region's replica (so a region cut off from the hub still
	// answers), first as it is — a caller without the right is refused
	// before its input is judged — and again on the state the answers come
	// from.
	plan.authorize = func(st *iam.State) error {
		for _, id := range others {
			if err := iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionCheckAccess, st.IdentityHRN(p.Realm, id)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(others) > 0 {
		if _, err := rep.Read(r.Context(), replica.Consistency{Mode: iam.MinimizeLatency}, plan.authorize); err != nil {
			return nil, err
		}
	}
	for i, in := range ins {
		pc := &plan.pending[i]
		if in.invalid != nil {
			return nil, in.invalid
		}
		if in.fields.Action != "" && (in.Action == "" || len(in.Action) > iam.MaxActionLength) {
			return nil, iam.FieldErrorf(in.fields.Action, "must be an action name of 1 to %d characters", iam.MaxActionLength)
		}
		if _, err := iam.ParseHRN(in.fields.Resource, in.Resource); err != nil {
			return nil, err
		}
		scope := pc.q.Scope
		if pc.other {
			scope = in.Scope
		} else if in.Scope != "" && in.Scope != scope && pc.denied == "" {
			held := "an unscoped token"
			if scope != "" {
				held = "a token scoped to " + scope
			}
			return nil, iam.FieldErrorf(in.fields.Scope, "%q differs from the scope of the checked identity's token (%s): a check of one's own access takes the scope of one's own token; get a project-scoped token (scope=<project HRN> at /oauth2/token) to reach a project's resources", in.Scope, held)
		}
		pc.q.Action, pc.q.Resource, pc.q.Scope = in.Action, in.Resource, ""
		if scope != "" {
			id, err := iam.ProjectIDFromHRN(in.fields.Scope, pc.q.Realm, scope)
			if err != nil {
				return nil, err
			}
			pc.q.Scope = id
		}
	}
	var err error
	if plan.c, err = parseConsistency(consField, cons, true); err != nil {
		return nil, err
	}
	return plan, nil
}

// read runs answer on the replica's state at the plan's consistency, the
// caller's right judged again there, and returns the position read at.
func (plan *checkPlan) read(r *http.Request, rep Replica, answer func(*iam.State)) (uint64, error) {
	return rep.Read(r.Context(), plan.c, func(st *iam.State) error {
		// A past state answers what was allowed then; the right to ask is
		// the caller's now (judged before), as an auditor may not have
		// existed then.
		if plan.c.Mode != iam.AtExactSnapshot {
			if err := plan.authorize(st); err != nil {
				return err
			}
		}
		answer(st)
		return nil
	})
}

// decide answers one judged check, for action, on st.
func (pc pendingCheck) decide(st *iam.State, action string) iam.Decision {
	if pc.denied != "" {
		return iam.Denied(pc.denied)
	}
	if pc.subject != nil {
		// Judged again on the state the answer comes from: a token revoked
		// there is denied there.
		if err := pc.subject.stillValid(st); err != nil {
			return iam.Denied("subjectToken: " + iam.ErrorMessage(err))
		}
	}
	if pc.kind != "" {
		if id := st.Identity(pc.q.Realm, pc.q.Subject); id != nil && id.Kind != pc.kind {
			return iam.Denied("subject " + pc.q.Subject + " is of type " + string(id.Kind) + ", not " + string(pc.kind))
		}
	}
	q := pc.q
	q.Action = action
	return st.Check(q)
}

func allowedLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// projectScope is the project a token's scope names: a client-credentials
// token's scope is a project HRN, while a user's token from the
// authorization-code flow carries OIDC scopes ("openid email"), which name
// no project and leave its checks unscoped.
func projectScope(scope string) string {
	if strings.HasPrefix(scope, "hrn:") {
		return scope
	}
	return ""
}

// parseConsistency reads a body's consistency object (named field in
// errors); absent, it is minimize_latency. exactOK admits
// at_exact_snapshot, which checks answer and lookups do not.
func parseConsistency(field string, in *consistencyBody, exactOK bool) (replica.Consistency, error) {
	c := replica.Consistency{Mode: iam.MinimizeLatency}
	if in == nil {
		return c, nil
	}
	c.Mode = in.Mode
	modes := "minimize_latency, at_least_as_fresh, fully_consistent"
	if exactOK {
		modes += ", at_exact_snapshot"
	}
	switch {
	case c.Mode == iam.MinimizeLatency, c.Mode == iam.FullyConsistent:
	case c.Mode == iam.AtLeastAsFresh, c.Mode == iam.AtExactSnapshot && exactOK:
		if in.Token == "" {
			return c, iam.FieldErrorf(field+".token", "is required for %s", c.Mode)
		}
	default:
		return c, iam.FieldErrorf(field+".mode", "%q is not one of %s", c.Mode, modes)
	}
	if in.Token != "" {
		seq, err := ParseToken(field+".token", in.Token)
		if err != nil {
			return c, err
		}
		c.Token = seq
	}
	if ms := in.WaitMs; ms != nil {
		if *ms < 0 || *ms > maxWaitMs {
			return c, iam.FieldErrorf(field+".waitMs", "must be from 0 to %d", maxWaitMs)
		}
		c.Wait = time.Duration(*ms) * time.Millisecond
		if *ms == 0 {
			c.Wait = time.Nanosecond // answer now or say the replica is behind
		}
	}
	return c, nil
}
