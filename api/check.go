package api

import (
	"net/http"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

type checkRequest struct {
	Subject string `json:"subject"`
	// SubjectToken, in place of Subject, is an access token the caller
	// received from its own caller: subject and scope are that token's.
	SubjectToken string `json:"subjectToken"`
	Action       string `json:"action"`
	Resource     string `json:"resource"`
	Scope        string `json:"scope"`
	Consistency  *struct {
		Mode   string `json:"mode"`
		Token  string `json:"token"`
		WaitMs *int   `json:"waitMs"`
	} `json:"consistency"`
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
	start := time.Now()
	p := principal(r)
	var in checkRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	// scope is the project scope of the check: that of the subject's own
	// token when the subject checks itself or is named by its token (HERE:
	// project resources need a project-scoped token, so a body scope
	// cannot widen an unscoped one), the body's when another subject is
	// checked by right.
	realm, scope := p.Realm, projectScope(p.Scope)
	var subject Principal // the subjectToken's, once verified
	var denied string     // why the subjectToken does not stand, if it does not
	switch {
	case in.SubjectToken != "" && in.Subject != "":
		return iam.FieldErrorf("subjectToken", "is given in place of subject, not with it")
	case in.SubjectToken != "":
		var err error
		subject, err = s.tokenPrincipal(r, in.SubjectToken)
		if iam.ErrorCode(err) == iam.EUnauthenticated {
			// The caller is who it says; its caller's token is not: a
			// denial, as for a subject that is deactivated or unknown.
			denied = "subjectToken: " + iam.ErrorMessage(err)
		} else if err != nil {
			return err
		}
		in.Subject, realm, scope = subject.ID, subject.Realm, projectScope(subject.Scope)
	case in.Subject == "":
		in.Subject = p.ID
	}
	if denied == "" {
		if err := iam.ValidID("subject", in.Subject); err != nil {
			return err
		}
	}
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	// Checking another identity's access is itself a permission, judged on
	// this region's replica (so a region cut off from the hub still answers),
	// first as it is — a caller without the right is refused before its
	// input is judged — and again below, on the state the answer comes from.
	// The holder of a subjectToken may ask what its subject may do: it
	// could as well send the token as its own bearer token.
	other := in.SubjectToken == "" && in.Subject != p.ID
	authorize := func(st *iam.State) error {
		if !other {
			return nil
		}
		return iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionCheckAccess, st.IdentityHRN(p.Realm, in.Subject))
	}
	if other {
		if _, err := rep.Read(r.Context(), replica.Consistency{Mode: iam.MinimizeLatency}, authorize); err != nil {
			return err
		}
	}
	if in.Action == "" || len(in.Action) > iam.MaxActionLength {
		return iam.FieldErrorf("action", "must be an action name of 1 to %d characters", iam.MaxActionLength)
	}
	if _, err := iam.ParseHRN("resource", in.Resource); err != nil {
		return err
	}
	if other {
		scope = in.Scope
	} else if in.Scope != "" && in.Scope != scope && denied == "" {
		held := "an unscoped token"
		if scope != "" {
			held = "a token scoped to " + scope
		}
		return iam.FieldErrorf("scope", "%q differs from the scope of the checked identity's token (%s): a check of one's own access takes the scope of one's own token; get a project-scoped token (scope=<project HRN> at /oauth2/token) to reach a project's resources", in.Scope, held)
	}
	q := iam.CheckRequest{Realm: realm, Subject: in.Subject, Action: in.Action, Resource: in.Resource}
	if scope != "" {
		id, err := iam.ProjectIDFromHRN("scope", realm, scope)
		if err != nil {
			return err
		}
		q.Scope = id
	}
	c := replica.Consistency{Mode: iam.MinimizeLatency}
	if in.Consistency != nil {
		c.Mode = in.Consistency.Mode
		switch c.Mode {
		case iam.MinimizeLatency, iam.FullyConsistent:
		case iam.AtLeastAsFresh, iam.AtExactSnapshot:
			if in.Consistency.Token == "" {
				return iam.FieldErrorf("consistency.token", "is required for %s", c.Mode)
			}
		default:
			return iam.FieldErrorf("consistency.mode", "%q is not one of minimize_latency, at_least_as_fresh, fully_consistent, at_exact_snapshot", c.Mode)
		}
		if in.Consistency.Token != "" {
			seq, err := ParseToken("consistency.token", in.Consistency.Token)
			if err != nil {
				return err
			}
			c.Token = seq
		}
		if ms := in.Consistency.WaitMs; ms != nil {
			if *ms < 0 || *ms > maxWaitMs {
				return iam.FieldErrorf("consistency.waitMs", "must be from 0 to %d", maxWaitMs)
			}
			c.Wait = time.Duration(*ms) * time.Millisecond
			if *ms == 0 {
				c.Wait = time.Nanosecond // answer now or say the replica is behind
			}
		}
	}
	var d iam.Decision
	seq, err := rep.Read(r.Context(), c, func(st *iam.State) error {
		// A past state answers what was allowed then; the right to ask is
		// the caller's now (judged above), as an auditor may not have
		// existed then.
		if c.Mode != iam.AtExactSnapshot {
			if err := authorize(st); err != nil {
				return err
			}
		}
		if denied == "" && in.SubjectToken != "" {
			// Judged again on the state the answer comes from: a token
			// revoked there is denied there.
			if err := subject.stillValid(st); err != nil {
				d = iam.Decision{Reason: "subjectToken: " + iam.ErrorMessage(err)}
				return nil
			}
		}
		if denied != "" {
			d = iam.Decision{Reason: denied}
			return nil
		}
		d = st.Check(q)
		return nil
	})
	if err != nil {
		return err
	}
	if s.metrics != nil {
		s.metrics.checks.WithLabelValues(rep.Region(), allowedLabel(d.Allowed)).Inc()
	}
	s.metrics.observeCheck(rep.Region(), c.Mode, start)
	tok := FormatToken(seq)
	w.Header().Set("Consistency-Token", tok)
	writeJSON(w, http.StatusOK, checkResponse{Allowed: d.Allowed, Reason: d.Reason, Region: rep.Region(), ConsistencyToken: tok})
	return nil
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
