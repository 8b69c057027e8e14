package daemon_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// monitoringDir holds the operators' Prometheus rules and Grafana
// dashboard (docs/deploy/README.md, "Monitoring").
const monitoringDir = "../../../docs/deploy/monitoring"

// regionOnly are the metrics only a region process exports: the relay of
// its writes to the hub.
var regionOnly = []string{"iam_forwarded_requests_total"}

// queriedMetrics returns every metric name selected by the rules'
// expressions and the dashboard's queries (with where it is used), and the
// names the recording rules define.
func queriedMetrics(t *testing.T) (used map[string]string, recorded map[string]bool) {
	t.Helper()
	used, recorded = map[string]string{}, map[string]bool{}
	p := parser.NewParser(parser.Options{})
	selected := func(where, query string) {
		// Grafana's interval variables stand where PromQL wants a duration;
		// $region and the like stand only in label values, which parse.
		for _, v := range []string{"$__rate_interval", "$__interval", "$__range"} {
			query = strings.ReplaceAll(query, v, "5m")
		}
		expr, err := p.ParseExpr(query)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, query, err)
			return
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				if vs.Name == "" {
					t.Errorf("%s: %q selects no metric by name", where, query)
				}
				used[vs.Name] = where
			}
			return nil
		})
	}

	raw, err := os.ReadFile(filepath.Join(monitoringDir, "iam-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Record, Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("iam-rules.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			selected("iam-rules.yml "+r.Record+r.Alert, r.Expr)
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}

	raw, err = os.ReadFile(filepath.Join(monitoringDir, "iam-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard any
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("iam-dashboard.json: %v", err)
	}
	queries := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				path += "/" + title
			}
			if name, ok := v["name"].(string); ok {
				path += "/$" + name
			}
			for k, e := range v {
				s, isString := e.(string)
				switch {
				case k == "expr" && isString:
					queries++
					selected("iam-dashboard.json "+path, s)
				case k == "definition" && isString:
					// A variable's label_values(SELECTOR, LABEL): Grafana's, not PromQL.
					inner, ok := strings.CutPrefix(s, "label_values(")
					i := strings.LastIndex(inner, ",")
					if !ok || i < 0 {
						t.Errorf("iam-dashboard.json %s: variable query %q is not label_values(selector, label)", path, s)
						continue
					}
					queries++
					selected("iam-dashboard.json "+path, inner[:i])
				default:
					walk(path, e)
				}
			}
		case []any:
			for _, e := range v {
				walk(path, e)
			}
		}
	}
	walk("", dashboard)
	if queries < 10 {
		t.Fatalf("iam-dashboard.json: found %d queries, want the dashboard's every panel", queries)
	}
	return used, recorded
}

// scrape returns the metric families base's /metrics exports.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return fams
}

// exportedNames are the series names of fams as PromQL selects them (a
// histogram's _bucket, _count and _sum).
func exportedNames(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_count"], out[name+"_sum"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_count"], out[name+"_sum"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}

// sample sums the values (a histogram's count) of name's series whose
// labels include labels.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// exercise does what the dashboard shows through c (the bootstrap admin
// talking to one process): writes, a refused write, a check in every
// consistency mode, a token request and a wrong one, a bad bearer token.
// It returns the status and error code of the refused write.
func exercise(t *testing.T, c *daemontest.Client, realm string) (refusedStatus int, refusedCode string) {
	t.Helper()
	appID, clientID, secret, resource, tok := setupSubject(t, c, realm)
	// at_least_as_fresh first: minimize_latency then answers on the same
	// replica, which has the policy by then.
	for _, mode := range []string{"at_least_as_fresh", "minimize_latency", "fully_consistent", "at_exact_snapshot"} {
		withToken := ""
		if mode == "at_least_as_fresh" || mode == "at_exact_snapshot" {
			withToken = tok
		}
		r := c.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, mode, withToken, 5000))
		if r.Body["allowed"] != true {
			t.Fatalf("check at %s: got %s, want allowed", mode, r.Raw)
		}
	}
	daemontest.ClientToken(t, c.Base, clientID, secret, "")
	if status := tokenStatus(t, c.Base, clientID, "not-the-secret"); status != http.StatusUnauthorized {
		t.Fatalf("token with a wrong secret: got %d, want 401", status)
	}
	c.With("not-a-token").Must(http.StatusUnauthorized, "GET", "/v1/replicas", nil)
	// Adding a member to a group that does not exist passes the request's
	// checks and is refused by the domain: a write that fails.
	r := c.Do("PUT", "/v1/groups/no-such-group/members/"+appID, nil)
	if r.Status < 400 || r.Str("code") == "" {
		t.Fatalf("a member of no group: got %d %s, want a problem", r.Status, r.Raw)
	}
	return r.Status, r.Str("code")
}

// tokenStatus asks base's token endpoint for a client-credentials token
// and returns the status.
func tokenStatus(t *testing.T, base, id, secret string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// assertExported fails for every name in used that fams does not export
// and the rules do not record, except those in skip.
func assertExported(t *testing.T, process string, fams map[string]*dto.MetricFamily, used map[string]string, recorded map[string]bool, skip []string) {
	t.Helper()
	exported := exportedNames(fams)
	for name, where := range used {
		switch {
		case slices.Contains(skip, name) || exported[name]:
		case strings.Contains(name, ":"):
			if !recorded[name] {
				t.Errorf("%s: %s is neither exported nor recorded by a rule", where, name)
			}
		default:
			t.Errorf("%s: %s is not exported by the %s's /metrics", where, name, process)
		}
	}
}

// TestMonitoring_QueriedMetricsExported: every metric the alerting and
// recording rules and the Grafana dashboard query is exported by iamd's
// /metrics — by the all-in-one and a hub process (all but the region-only
// ones) and by a region process (all).
func TestMonitoring_QueriedMetricsExported(t *testing.T) {
	used, recorded := queriedMetrics(t)
	for _, name := range regionOnly {
		if _, ok := used[name]; !ok {
			t.Errorf("regionOnly names %s, which nothing queries", name)
		}
	}

	t.Run("all-in-one", func(t *testing.T) {
		m := daemontest.Start(t, "")
		exercise(t, daemontest.AdminClient(t, m), m.Bootstrap.Realm)
		assertExported(t, "all-in-one", scrape(t, daemontest.URL(m)), used, recorded, regionOnly)
	})

	t.Run("hub and region", func(t *testing.T) {
		top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
		exercise(t, top.admin("eu-west"), top.hubs[0].Bootstrap.Realm)
		assertExported(t, "hub", scrape(t, daemontest.URL(top.hubs[0])), used, recorded, regionOnly)
		assertExported(t, "region", scrape(t, daemontest.URL(top.regions["eu-west"])), used, recorded, nil)
	})
}

// TestMetrics_Move: the series the alerts and the dashboard rely on count
// what they say — checks by consistency mode, refused writes by code,
// token-endpoint answers by status, the lag threshold.
func TestMetrics_Move(t *testing.T) {
	m := daemontest.StartWith(t, func(c *daemon.Config) { c.MaxLag = 7 * time.Second })
	base := daemontest.URL(m)
	region := m.Replicas()[0].Region()
	before := scrape(t, base)
	refusedStatus, refusedCode := exercise(t, daemontest.AdminClient(t, m), m.Bootstrap.Realm)
	after := scrape(t, base)
	moved := func(name string, labels map[string]string) float64 {
		return sample(after, name, labels) - sample(before, name, labels)
	}

	for _, mode := range []string{"minimize_latency", "at_least_as_fresh", "fully_consistent", "at_exact_snapshot"} {
		if got := moved("iam_check_duration_seconds", map[string]string{"region": region, "mode": mode}); got != 1 {
			t.Errorf("iam_check_duration_seconds{region=%q,mode=%q}: counted %v checks, want 1", region, mode, got)
		}
	}
	if got := moved("iam_write_failures_total", map[string]string{"code": refusedCode}); got != 1 {
		t.Errorf("iam_write_failures_total{code=%q}: moved by %v after one refused write, want 1", refusedCode, got)
	}
	if got := moved("iam_write_failures_total", nil); got != 1 {
		t.Errorf("iam_write_failures_total: moved by %v in all, want 1 (the one refused write)", got)
	}
	token := func(code string) map[string]string {
		return map[string]string{"route": "POST /oauth2/token", "code": code}
	}
	// The admin's token and the app's: 2 issued; one wrong secret.
	for code, want := range map[string]float64{"200": 2, "401": 1} {
		if got := moved("iam_http_responses_total", token(code)); got != want {
			t.Errorf("iam_http_responses_total{route=\"POST /oauth2/token\",code=%q}: moved by %v, want %v", code, got, want)
		}
	}
	if got := moved("iam_http_responses_total", map[string]string{"route": "GET /v1/replicas", "code": "401"}); got != 1 {
		t.Errorf("iam_http_responses_total{route=\"GET /v1/replicas\",code=\"401\"}: moved by %v after a bad bearer token, want 1", got)
	}
	if got := moved("iam_http_responses_total", map[string]string{"route": "POST /v1/check", "code": "200"}); got != 4 {
		t.Errorf("iam_http_responses_total{route=\"POST /v1/check\",code=\"200\"}: moved by %v, want 4", got)
	}
	refused := map[string]string{"route": "PUT /v1/groups/{id}/members/{identityId}", "code": strconv.Itoa(refusedStatus)}
	if got := moved("iam_http_responses_total", refused); got != 1 {
		t.Errorf("iam_http_responses_total%v: moved by %v after the refused write, want 1", refused, got)
	}
	if got := sample(after, "iam_replica_max_lag_seconds", nil); got != 7 {
		t.Errorf("iam_replica_max_lag_seconds: got %v, want 7 (--max-lag 7s)", got)
	}
}
