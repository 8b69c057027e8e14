package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	iamclient "github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// ctSeq reads the sequence in a server token (the test may know the
// format; clients may not).
func ctSeq(tb testing.TB, tok string) uint64 {
	tb.Helper()
	n, err := strconv.ParseUint(strings.TrimPrefix(tok, "ct1."), 36, 64)
	if err != nil || !strings.HasPrefix(tok, "ct1.") {
		tb.Fatalf("token %q: not a ct1 token", tok)
	}
	return n
}

// TestClient_EndToEnd walks through management writes with the Go client,
// then lets the nearest region fall behind (its projector stopped, so it
// really answers 503 replica_behind) and checks that a session's check is
// retried there, honouring Retry-After, then fails over to the next region
// and gets the fresh answer — never the stale one that region holds.
func TestClient_EndToEnd(t *testing.T) {
	m := daemontest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := daemontest.URL(m)
	ts := iamclient.ClientCredentials(ctx, base+"/oauth2/token", m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "", openapitest.Client(t))
	var mu sync.Mutex
	var events []iamclient.RetryEvent
	c, err := iamclient.New([]string{base + "?region=eu-west", base + "?region=us-east"}, iamclient.WithTokenSource(ts), iamclient.WithHTTPClient(openapitest.Client(t)),
		iamclient.WithOnRetry(func(e iamclient.RetryEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	admin := c.Session()
	realm := m.Bootstrap.Realm

	// The README's walkthrough, through the iamclient.
	user, err := admin.CreateUser(ctx, "ann@example.com", "Ann", "")
	if err != nil {
		t.Fatal(err)
	}
	group, err := admin.CreateGroup(ctx, "catalog readers")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := admin.CreatePolicy(ctx, "read catalogs",
		iamclient.Statement{Effect: "allow", Actions: []string{"read"}, Resources: []string{"hrn:here:data::" + realm + ":catalog-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AttachPolicy(ctx, policy.ID, group.ID); err != nil {
		t.Fatal(err)
	}
	added, err := admin.AddMember(ctx, group.ID, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if admin.Token() != added.ConsistencyToken || added.ConsistencyToken == "" {
		t.Fatalf("got session token %q, want the last write's %q", admin.Token(), added.ConsistencyToken)
	}
	q := iamclient.CheckRequest{Subject: user.ID, Action: "read", Resource: "hrn:here:data::" + realm + ":catalog-42"}
	got, err := admin.Check(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Allowed || got.Region != "eu-west" {
		t.Fatalf("got %+v, want allowed by the nearest region, eu-west", got)
	}
	if st := c.Stats(); st.Attempts != st.Calls {
		t.Fatalf("got %d attempts for %d calls, want no retry while every region is current", st.Attempts, st.Calls)
	}

	// eu-west stops applying the log; the membership is then revoked.
	m.Projectors()[daemontest.RegionIndex(t, m, "eu-west")].Stop()
	removed, err := admin.RemoveMember(ctx, group.ID, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	euOnly, _ := iamclient.New([]string{base + "?region=eu-west"}, iamclient.WithTokenSource(ts), iamclient.WithHTTPClient(openapitest.Client(t)))
	stale, err := euOnly.Check(ctx, iamclient.CheckRequest{Subject: user.ID, Action: q.Action, Resource: q.Resource,
		Consistency: iamclient.Consistency{Mode: iamclient.MinimizeLatency}})
	if err != nil {
		t.Fatal(err)
	}
	if !stale.Allowed {
		t.Fatalf("got %+v from eu-west at minimize_latency, want its stale allow (the test needs a region behind)", stale)
	}

	mu.Lock()
	events = nil
	mu.Unlock()
	before := c.Stats()
	q.Consistency.Wait = 200 * time.Millisecond // the region's own wait before it says replica_behind
	start := time.Now()
	got, err = admin.Check(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if got.Allowed || got.Region != "us-east" || !strings.Contains(got.Endpoint, "region=us-east") {
		t.Fatalf("got %+v, want the fresh deny from us-east", got)
	}
	if ctSeq(t, got.ConsistencyToken) < ctSeq(t, removed.ConsistencyToken) {
		t.Fatalf("got an answer at %s, want at least %s", got.ConsistencyToken, removed.ConsistencyToken)
	}
	after := c.Stats()
	if r := after.Retries[iamclient.CauseReplicaBehind] - before.Retries[iamclient.CauseReplicaBehind]; r != iamclient.DefaultAttemptsPerEndpoint-1 {
		t.Fatalf("got %d retries for replica_behind, want %d", r, iamclient.DefaultAttemptsPerEndpoint-1)
	}
	if f := after.Failovers[iamclient.CauseReplicaBehind] - before.Failovers[iamclient.CauseReplicaBehind]; f != 1 {
		t.Fatalf("got %d failovers for replica_behind, want 1", f)
	}
	mu.Lock()
	evs := append([]iamclient.RetryEvent(nil), events...)
	mu.Unlock()
	if len(evs) != 2 {
		t.Fatalf("got %d retry events, want 2: %+v", len(evs), evs)
	}
	if e := evs[0]; e.Failover || e.Cause != iamclient.CauseReplicaBehind || e.RetryAfter != time.Second || e.Delay < time.Second {
		t.Fatalf("got first event %+v, want a retry on eu-west no sooner than its Retry-After of 1s", e)
	}
	if e := evs[1]; !e.Failover || !strings.Contains(e.Next, "region=us-east") {
		t.Fatalf("got second event %+v, want the failover to us-east", e)
	}
	if took < time.Second {
		t.Fatalf("the check took: got %v, want at least the 1s Retry-After", took)
	}
	// The server counted the refusals too.
	metrics := daemontest.AdminClient(t, m).Must(http.StatusOK, "GET", "/metrics", nil)
	if !strings.Contains(string(metrics.Raw), `iam_replica_behind_total{region="eu-west"} 2`) {
		t.Fatalf("want iam_replica_behind_total{region=\"eu-west\"} 2 in /metrics")
	}
}

// TestClient_WriteRetryIsApplied once: the first answer to a write is lost
// on the way back (a proxy turns it into a 503); the client retries with
// the same Idempotency-Key and the server answers as the first time did.
// A dead endpoint ahead of it is failed over.
func TestClient_WriteRetryIsAppliedOnce(t *testing.T) {
	m := daemontest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	up, _ := url.Parse(daemontest.URL(m))
	var lost atomic.Bool
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(up)
		r.Out.Host = up.Host // the token's issuer is iamd's own address
	}}
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodPost && r.Request.URL.Path == "/v1/groups" && lost.CompareAndSwap(false, true) {
			r.Body.Close()
			body := `{"type":"https://iam.dev/problems/unavailable","title":"Unavailable","status":503,"detail":"answer lost","code":"unavailable","correlationId":"x"}`
			r.StatusCode, r.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
			r.Header = http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"1"}}
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	ts := iamclient.ClientCredentials(ctx, daemontest.URL(m)+"/oauth2/token", m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "", openapitest.Client(t))
	c, _ := iamclient.New([]string{dead, front.URL}, iamclient.WithTokenSource(ts), iamclient.WithHTTPClient(openapitest.Client(t)), iamclient.WithAttemptsPerEndpoint(2))
	name := fmt.Sprintf("retried group %d", time.Now().UnixNano())
	g, err := c.CreateGroup(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !lost.Load() || !g.Replayed || g.ID == "" {
		t.Fatalf("got %+v (answer lost %v), want the replayed answer of the first attempt", g, lost.Load())
	}
	st := c.Stats()
	if st.Failovers[iamclient.CauseNetwork] != 1 || st.Retries[iamclient.CauseUnavailable] != 1 {
		t.Fatalf("got retries %v failovers %v, want a network failover and an unavailable retry", st.Retries, st.Failovers)
	}
	list := daemontest.AdminClient(t, m).Must(http.StatusOK, "GET", "/v1/groups?limit=100", nil)
	if n := strings.Count(string(list.Raw), name); n != 1 {
		t.Fatalf("got %d groups named %q, want 1", n, name)
	}
}
