package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/writer"
)

// Dry-run (issue 11 item 4): POST /v1/simulate decides proposed writes on a
// copy of the latest state and reports who would gain or lose what. Each
// proposed write is served by the very handler that serves it for real,
// through the server's own mux, with a simulation in the request context:
// the handler parses and authorizes it as ever, and the two points where a
// write leaves the process — the writer (Server.execute) and the latest
// state it is judged on (Server.latest) — are answered by the copy instead.
// The side effects that are not log writes (the vault's keys, mail, signing
// keys, snapshots) are skipped or refused where they happen. See
// docs/dry-run.md.

// maxSimulatedChanges bounds the changes (and checks) of one simulation.
const maxSimulatedChanges = 100

// simulation is one dry-run in progress: the caller, and the state its
// proposed writes are decided on and applied to, one after the other.
type simulation struct {
	p  Principal
	st *iam.State
	// pepper stands in for the realm's blind-index pepper, which the vault
	// would make on first use: an email index computed under it matches
	// the same email within this simulation, never a real user's.
	pepper []byte
	// keys are the data keys of the users the simulation created, by
	// their cache name (Server.dataKey).
	keys map[string][]byte
}

const ctxSimulation ctxKey = 100 // beside ctxCorrelation and ctxPrincipal

func simulationFrom(ctx context.Context) *simulation {
	sim, _ := ctx.Value(ctxSimulation).(*simulation)
	return sim
}

// errNotSimulated refuses, inside a simulation, a write whose effect is not
// (only) a log entry.
func errNotSimulated(what string) error {
	return iam.Errorf(iam.EInvalid, "%s is not simulated: its effect is not a change of the access state", what)
}

// execute runs req through the writer, counting the write or its failure — or, in a
// simulation, decides it with iam.Decide on the simulation's state and
// applies it there, exactly as the writer does before it appends, and
// counts nothing. Errors: see Writer.Execute.
func (s *Server) execute(ctx context.Context, req iam.Request) (writer.Result, error) {
	sim := simulationFrom(ctx)
	if sim == nil {
		res, err := s.mode.execute(ctx, req)
		s.metrics.writeDone(err)
		return res, err
	}
	// No idempotency key reaches here (proposed writes carry no headers),
	// so there is no earlier request to replay.
	evs, err := iam.Decide(sim.st, req)
	if err != nil {
		return writer.Result{}, err
	}
	if err := sim.st.ApplyEvents(evs, nil); err != nil {
		return writer.Result{}, iam.Errorf(iam.EInternal, "apply decided events: %v", err)
	}
	return writer.Result{Seq: sim.st.Seq(), Events: evs}, nil
}

// copyLatest returns a private copy of the latest state: a deep copy
// (iam.State.Clone), made under the state's read lock. Replaying the log
// into a fresh state would be as correct, but costs time in proportion to
// the log (about 0.1 ms an entry), a clone in proportion to the state
// (docs/dry-run.md has the figures).
func (s *Server) copyLatest(ctx context.Context) (*iam.State, error) {
	var c *iam.State
	err := s.latest(ctx, func(st *iam.State) error {
		c = st.Clone()
		return nil
	})
	return c, err
}

type simulateRequest struct {
	Changes []simulatedChange `json:"changes"`
	Checks  []simulatedCheck  `json:"checks"`
}

type simulatedChange struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body"`
}

// simulatedCheck is a /v1/check request without consistency (the answers
// come from the two states of the simulation) nor subjectToken (a token
// stands on the real state, not on a proposed one).
type simulatedCheck struct {
	Subject  string `json:"subject"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Scope    string `json:"scope"`
}

type simulatedAccess struct {
	IdentityID string           `json:"identityId"`
	Gained     []iam.Permission `json:"gained"`
	Lost       []iam.Permission `json:"lost"`
}

type simulatedAnswer struct {
	Before bool   `json:"before"`
	After  bool   `json:"after"`
	Reason string `json:"reason"`
}

type simulatedError struct {
	Index  int    `json:"index"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Field  string `json:"field,omitempty"`
}

// simulate serves POST /v1/simulate.
func (s *Server) simulate(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	var in simulateRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if len(in.Changes) == 0 {
		return iam.FieldErrorf("changes", "at least one change is required")
	}
	if len(in.Changes) > maxSimulatedChanges {
		return iam.FieldErrorf("changes", "at most %d changes", maxSimulatedChanges)
	}
	if len(in.Checks) > maxSimulatedChanges {
		return iam.FieldErrorf("checks", "at most %d checks", maxSimulatedChanges)
	}
	for i, ch := range in.Changes {
		if err := simulable(ch); err != nil {
			var e *iam.Error
			if errors.As(err, &e) {
				e.Field = fmt.Sprintf("changes[%d].%s", i, e.Field)
			}
			return err
		}
	}
	queries := make([]iam.CheckRequest, len(in.Checks))
	for i, q := range in.Checks {
		var err error
		if queries[i], err = checkQuery(p, i, q); err != nil {
			return err
		}
	}
	// One copy, observed before the changes and again after them.
	st, err := s.copyLatest(r.Context())
	if err != nil {
		return err
	}
	seq := st.Seq()
	before, err := observe(p, st, queries, false)
	if err != nil {
		return err
	}
	var pepper [32]byte
	_, _ = rand.Read(pepper[:])
	sim := &simulation{p: p, st: st, pepper: pepper[:], keys: map[string][]byte{}}
	errs := []simulatedError{}
	for i, ch := range in.Changes {
		if e := s.simulateChange(r, sim, ch); e != nil {
			e.Index = i
			errs = append(errs, *e)
		}
	}
	after, err := observe(p, st, queries, true)
	if err != nil {
		return err
	}
	checks := make([]simulatedAnswer, len(queries))
	for i := range queries {
		checks[i] = simulatedAnswer{Before: before.checks[i].Allowed, After: after.checks[i].Allowed, Reason: after.checks[i].Reason()}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"affected":         affected(before, after),
		"checks":           checks,
		"errors":           errs,
		"consistencyToken": FormatToken(seq),
	})
	return nil
}

// simulable refuses what is not a proposed write to this API: only writes
// under /v1/ are simulated, never a check nor a simulation itself. The path
// must be clean, as the mux would redirect it rather than serve it.
func simulable(ch simulatedChange) error {
	switch ch.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return iam.FieldErrorf("method", "%q is not a write (POST, PUT, PATCH or DELETE)", ch.Method)
	}
	u, err := url.Parse(ch.Path)
	if err != nil || u.Scheme != "" || u.Host != "" || path.Clean(u.Path) != u.Path ||
		!strings.HasPrefix(u.Path, "/v1/") || u.Path == "/v1/simulate" || u.Path == "/v1/check" {
		return iam.FieldErrorf("path", "%q is not the clean path of a write under /v1/", ch.Path)
	}
	return nil
}

// simulateChange serves one proposed write through the mux in sim, and
// returns its refusal, if any, as the real endpoint would have answered it.
func (s *Server) simulateChange(outer *http.Request, sim *simulation, ch simulatedChange) *simulatedError {
	req, err := http.NewRequestWithContext(context.WithValue(outer.Context(), ctxSimulation, sim), ch.Method, ch.Path, bytes.NewReader(ch.Body))
	if err != nil {
		return &simulatedError{Status: http.StatusBadRequest, Code: iam.EInvalid, Detail: "path: " + err.Error(), Field: "path"}
	}
	h, pattern := s.mux.Handler(req)
	// Only an authenticated handler acts as the caller: a public one
	// (password resets, invitation acceptance) acts for whoever holds a
	// token or an email, and its effects (mail) are not the state's. An
	// unknown path or method (the catch-all "/") is the real 404.
	if _, authed := h.(authedHandler); !authed && pattern != "/" {
		return &simulatedError{Status: http.StatusBadRequest, Code: iam.EInvalid,
			Detail: fmt.Sprintf("path: %s %s is public, not a write a caller makes as itself", ch.Method, ch.Path), Field: "path"}
	}
	rec := &recorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, req) // routed again: the mux sets the path values
	if rec.status < 300 {
		return nil
	}
	var pr Problem
	if err := json.Unmarshal(rec.body.Bytes(), &pr); err != nil || pr.Code == "" {
		return &simulatedError{Status: rec.status, Code: iam.EInternal, Detail: http.StatusText(rec.status)}
	}
	return &simulatedError{Status: pr.Status, Code: pr.Code, Detail: pr.Detail, Field: pr.Field}
}

// recorder keeps a simulated write's answer: its status and, for a
// refusal, its problem details.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// checkQuery reads check i as /v1/check reads its body: the subject is
// the caller unless named, and a check of one's own access takes the scope
// of one's own token.
func checkQuery(p Principal, i int, q simulatedCheck) (iam.CheckRequest, error) {
	field := fmt.Sprintf("checks[%d]", i)
	subject, scope := q.Subject, projectScope(p.Scope)
	if subject == "" {
		subject = p.ID
	}
	if err := iam.ValidID(field+".subject", subject); err != nil {
		return iam.CheckRequest{}, err
	}
	if subject != p.ID {
		scope = q.Scope
	} else if q.Scope != "" && q.Scope != scope {
		return iam.CheckRequest{}, iam.FieldErrorf(field+".scope", "%q differs from the scope of your token: a check of one's own access takes the scope of one's own token", q.Scope)
	}
	if q.Action == "" || len(q.Action) > iam.MaxActionLength {
		return iam.CheckRequest{}, iam.FieldErrorf(field+".action", "must be an action name of 1 to %d characters", iam.MaxActionLength)
	}
	if _, err := iam.ParseHRN(field+".resource", q.Resource); err != nil {
		return iam.CheckRequest{}, err
	}
	cq := iam.CheckRequest{Realm: p.Realm, Subject: subject, Action: q.Action, Resource: q.Resource}
	if scope != "" {
		id, err := iam.ProjectIDFromHRN(field+".scope", p.Realm, scope)
		if err != nil {
			return iam.CheckRequest{}, err
		}
		cq.Scope = id
	}
	return cq, nil
}

// view is one state as a simulation compares it: the effective permissions
// of the realm's identities, which of them the caller may read, and the
// answers of its checks.
type view struct {
	perms    map[string]map[permissionKey]iam.Permission
	readable map[string]bool
	checks   []iam.Decision
}

// observe takes p's view of st. Checking another identity needs
// checkAccess on it, as at /v1/check, judged on each state the identity
// exists in, and on the final one (after the changes) in any case, so that
// an identity the changes create is judged too.
func observe(p Principal, st *iam.State, queries []iam.CheckRequest, final bool) (view, error) {
	v := view{perms: map[string]map[permissionKey]iam.Permission{}, readable: map[string]bool{}, checks: make([]iam.Decision, len(queries))}
	for i, q := range queries {
		if q.Subject != p.ID && (final || st.Identity(p.Realm, q.Subject) != nil) {
			if err := iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionCheckAccess, st.IdentityHRN(p.Realm, q.Subject)); err != nil {
				return view{}, err
			}
		}
		v.checks[i] = st.Check(q)
	}
	if r := st.Realm(p.Realm); r != nil {
		for id := range r.Identities.All() {
			v.perms[id] = permissionSet(st, p.Realm, id)
			v.readable[id] = id == p.ID || iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionRead, st.IdentityHRN(p.Realm, id)) == nil
		}
	}
	return v, nil
}

// affected lists the identities whose effective permissions differ
// between before and after, as sets of (effect, action, resource): the
// provenance of a permission that stays is no change of access. Only
// identities the caller may read on one state or the other are listed, so
// a simulation tells no more than GET /v1/identities/{id}/permissions
// would (before the changes, or after them).
func affected(before, after view) []simulatedAccess {
	ids := map[string]bool{}
	for _, v := range []view{before, after} {
		for id, ok := range v.readable {
			ids[id] = ids[id] || ok
		}
	}
	out := []simulatedAccess{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if !ids[id] {
			continue
		}
		// A set missing (an identity not yet created) is empty.
		b, a := before.perms[id], after.perms[id]
		gained, lost := difference(a, b), difference(b, a)
		if len(gained) > 0 || len(lost) > 0 {
			out = append(out, simulatedAccess{IdentityID: id, Gained: gained, Lost: lost})
		}
	}
	return out
}

// permissionKey is a permission without its provenance.
type permissionKey struct{ effect, action, resource string }

// permissionSet is id's effective permissions on st, each with one of its
// sources; none for an identity that does not exist (or is deleted) there.
func permissionSet(st *iam.State, realm, id string) map[permissionKey]iam.Permission {
	perms, _ := st.Permissions(realm, id)
	out := make(map[permissionKey]iam.Permission, len(perms))
	for _, pm := range perms {
		k := permissionKey{string(pm.Effect), pm.Action, pm.Resource}
		if _, ok := out[k]; !ok {
			out[k] = pm
		}
	}
	return out
}

// difference lists what a holds and b does not, in a stable order.
func difference(a, b map[permissionKey]iam.Permission) []iam.Permission {
	out := []iam.Permission{}
	for k, pm := range a {
		if _, ok := b[k]; !ok {
			out = append(out, pm)
		}
	}
	slices.SortFunc(out, func(x, y iam.Permission) int {
		return strings.Compare(string(x.Effect)+"\x00"+x.Action+"\x00"+x.Resource, string(y.Effect)+"\x00"+y.Action+"\x00"+y.Resource)
	})
	return out
}
