package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iam-project/iam"
)

// prober sends the measurement's own requests: checks that wait for a
// token (propagation), minimize_latency probes (time-to-revoke) and lag
// samples. It talks to one region's endpoint at a time, never retries on
// its own (its callers poll through backoff/v4) and never fails over: a
// measurement must know which region answered.
type prober struct {
	hc *http.Client
}

func newProber() *prober {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 128
	return &prober{hc: &http.Client{Transport: tr}}
}

func (p *prober) close() { p.hc.CloseIdleConnections() }

// checkAnswer is one answer to POST /v1/check, or the problem that came
// instead (Status ≠ 200, Code its code).
type checkAnswer struct {
	Status  int
	Code    string
	Allowed bool
	Region  string
	Seq     uint64 // the answer's consistency token
}

// check sends a self-check of the identity holding bearer to the region at
// base. token is the at_least_as_fresh position (0: none); wait its waitMs.
func (p *prober) check(ctx context.Context, base, bearer, resource, mode string, token uint64, wait time.Duration) (checkAnswer, error) {
	cons := map[string]any{"mode": mode}
	if token > 0 {
		cons["token"] = formatToken(token)
	}
	if mode != iam.MinimizeLatency && wait > 0 {
		cons["waitMs"] = max(1, wait.Milliseconds())
	}
	body, _ := json.Marshal(map[string]any{"action": "read", "resource": resource, "consistency": cons})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/check", bytes.NewReader(body))
	if err != nil {
		return checkAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	if token > 0 {
		// Also as a header, which reads (and API-key authentication)
		// honour: authentication could then wait for it too.
		req.Header.Set("Consistency-Token", formatToken(token))
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return checkAnswer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return checkAnswer{}, err
	}
	a := checkAnswer{Status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var prob struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(data, &prob)
		a.Code = prob.Code
		return a, nil
	}
	var out struct {
		Allowed          bool   `json:"allowed"`
		Region           string `json:"region"`
		ConsistencyToken string `json:"consistencyToken"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return checkAnswer{}, fmt.Errorf("decode check answer: %w", err)
	}
	seq, ok := parseToken(out.ConsistencyToken)
	if !ok {
		return checkAnswer{}, fmt.Errorf("check answer: bad consistency token %q", out.ConsistencyToken)
	}
	a.Allowed, a.Region, a.Seq = out.Allowed, out.Region, seq
	return a, nil
}

// replicaRow is a row of GET /v1/replicas.
type replicaRow struct {
	Region     string  `json:"region"`
	Applied    string  `json:"appliedToken"`
	LagEvents  uint64  `json:"lagEvents"`
	LagSeconds float64 `json:"lagSeconds"`
	Healthy    bool    `json:"healthy"`
}

// replicas reads GET /v1/replicas at base.
func (p *prober) replicas(ctx context.Context, base, bearer string) ([]replicaRow, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/replicas", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/replicas: %s", resp.Status)
	}
	var out struct {
		Replicas []replicaRow `json:"replicas"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Replicas, nil
}

// formatToken and parseToken mirror the server's token form ("ct1." and
// the sequence in base 36). Tokens are opaque to clients; the simulation
// reads them to judge answers against the log, and says so.
func formatToken(seq uint64) string { return "ct1." + strconv.FormatUint(seq, 36) }

func parseToken(t string) (uint64, bool) {
	rest, ok := strings.CutPrefix(t, "ct1.")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 36, 64)
	return n, err == nil
}

// digest reads GET /v1/replicas/{region}/digest?at=TOKEN at base: the
// region's read-model digest at exactly that position. status is the
// HTTP status (404: the endpoint or region is unknown; 409: the region
// had moved past at).
func (p *prober) digest(ctx context.Context, base, bearer, region string, at uint64, wait time.Duration) (string, int, error) {
	u := fmt.Sprintf("%s/v1/replicas/%s/digest?at=%s&waitMs=%d", base, region, formatToken(at), wait.Milliseconds())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := p.hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Sequence uint64 `json:"sequence"`
		Digest   string `json:"digest"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", resp.StatusCode, err
	}
	if out.Sequence != at {
		return "", http.StatusConflict, nil
	}
	return out.Digest, resp.StatusCode, nil
}
