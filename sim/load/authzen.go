package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// AuthZENReport is the checks/s of the same checks asked three ways of one
// iam in one run: one per /v1/check request, one per AuthZEN evaluation,
// and Batch per AuthZEN evaluations request.
type AuthZENReport struct {
	Check, Evaluation, Evaluations Result
}

// EvaluationRatio is a single evaluation's checks/s over /v1/check's.
func (r AuthZENReport) EvaluationRatio() float64 { return ratio(r.Evaluation, r.Check) }

// EvaluationsRatio is the boxcar's checks/s over /v1/check's.
func (r AuthZENReport) EvaluationsRatio() float64 { return ratio(r.Evaluations, r.Check) }

func ratio(a, b Result) float64 {
	if b.Rate() == 0 {
		return 0
	}
	return a.Rate() / b.Rate()
}

// CompareAuthZEN starts iam, loads it as Compare does and drives the
// same checks through /v1/check, /access/v1/evaluation and, batch items a
// request, /access/v1/evaluations, each for cfg.Duration in halves, in the
// order check, evaluation, evaluations, evaluations, evaluation, check so
// that none gains from its place.
func CompareAuthZEN(ctx context.Context, cfg Config, batch int, out io.Writer) (AuthZENReport, error) {
	if err := cfg.Validate(); err != nil {
		return AuthZENReport{}, err
	}
	if batch < 1 || batch > 1000 {
		return AuthZENReport{}, fmt.Errorf("-batch must be from 1 to 1000")
	}
	stack, cleanup, err := startForCompare(ctx, &cfg)
	if err != nil {
		return AuthZENReport{}, err
	}
	defer cleanup()
	check, err := setup(stack, cfg)
	if err != nil {
		return AuthZENReport{}, fmt.Errorf("load: set up iam: %w", err)
	}
	check.Name = "check"
	base := strings.TrimSuffix(check.URL, "/v1/check")
	single := Target{Name: "evaluation", URL: base + "/access/v1/evaluation", Header: check.Header}
	boxcar := Target{Name: "evaluations", URL: base + "/access/v1/evaluations", Header: check.Header, Checks: batch}
	var items []map[string]any
	for _, b := range check.Bodies {
		e, err := evaluationOf(b)
		if err != nil {
			return AuthZENReport{}, err
		}
		single.Bodies = append(single.Bodies, mustJSON(e))
		items = append(items, e)
	}
	// Each boxcar starts one item further on, so boxcars differ as the
	// single requests do; the consistency is the request's, not an item's.
	for start := range items {
		var evals []any
		for i := range batch {
			e := items[(start+i)%len(items)]
			evals = append(evals, map[string]any{"subject": e["subject"], "action": e["action"], "resource": e["resource"]})
		}
		boxcar.Bodies = append(boxcar.Bodies, mustJSON(map[string]any{"context": items[start]["context"], "evaluations": evals}))
	}
	opts := Options{Conns: cfg.Conns, Duration: cfg.Duration / 2, Warmup: cfg.Warmup}
	fmt.Fprintf(out, "driving %s, %s and %s (%d checks a request): %d connections, %s each in halves (each after %s warmup), mode %s, auth %s\n",
		check.URL, single.URL, boxcar.URL, batch, cfg.Conns, cfg.Duration, cfg.Warmup, cfg.Mode, cfg.Auth)
	var rep AuthZENReport
	for _, t := range []Target{check, single, boxcar, boxcar, single, check} {
		r, err := Run(ctx, t, opts)
		if err != nil {
			return rep, err
		}
		fmt.Fprintln(out, "  ", r)
		switch t.Name {
		case check.Name:
			rep.Check = rep.Check.Merge(r)
		case single.Name:
			rep.Evaluation = rep.Evaluation.Merge(r)
		default:
			rep.Evaluations = rep.Evaluations.Merge(r)
		}
	}
	for _, r := range []Result{rep.Check, rep.Evaluation, rep.Evaluations} {
		fmt.Fprintln(out, r)
		if r.Failures > 0 {
			fmt.Fprintf(out, "%s: %d failures, the first: %s\n", r.Name, r.Failures, r.FirstFailure)
		}
	}
	return rep, nil
}

// evaluationOf maps a /v1/check body to the AuthZEN evaluation of the same
// check (docs/authzen.md).
func evaluationOf(checkBody []byte) (map[string]any, error) {
	var c struct {
		Subject, Action, Resource string
		Consistency               map[string]any
	}
	if err := json.Unmarshal(checkBody, &c); err != nil {
		return nil, err
	}
	return map[string]any{"subject": map[string]any{"type": "user", "id": c.Subject}, "action": map[string]any{"name": c.Action},
		"resource": map[string]any{"type": "catalog", "id": c.Resource}, "context": map[string]any{"consistency": c.Consistency}}, nil
}
