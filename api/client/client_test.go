package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam/api/client"
)

// fakeClock is a backoff.Clock that moves only when a fakeTimer sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeTimer fires at once, advancing the clock by the duration it was
// started with, and records every sleep.
type fakeTimer struct {
	clock *fakeClock
	c     chan time.Time
	mu    *sync.Mutex
	slept *[]time.Duration
}

func (t *fakeTimer) Start(d time.Duration) {
	t.clock.advance(d)
	t.mu.Lock()
	*t.slept = append(*t.slept, d)
	t.mu.Unlock()
	t.c <- t.clock.Now()
}
func (t *fakeTimer) Stop()               {}
func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (f *fakeTime) timers() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.slept...)
}

// fakeTime bundles the clock and the timers of one client.
type fakeTime struct {
	clock *fakeClock
	mu    sync.Mutex
	slept []time.Duration
}

func newFakeTime() *fakeTime { return &fakeTime{clock: newFakeClock()} }

func (f *fakeTime) options() []client.Option {
	return []client.Option{
		client.WithClock(f.clock),
		client.WithTimer(func() backoff.Timer {
			return &fakeTimer{clock: f.clock, c: make(chan time.Time, 1), mu: &f.mu, slept: &f.slept}
		}),
	}
}

// answer is one scripted response.
type answer struct {
	status     int
	code       string // problem details code; empty for a 2xx JSON body
	retryAfter string
	body       string // 2xx body; default {}
	header     map[string]string
}

func problem(status int, code, retryAfter string) answer {
	return answer{status: status, code: code, retryAfter: retryAfter}
}

func ok(body string, header ...string) answer {
	a := answer{status: 200, body: body, header: map[string]string{}}
	for i := 0; i+1 < len(header); i += 2 {
		a.header[header[i]] = header[i+1]
	}
	return a
}

// seen is one request as the fake server received it.
type seen struct {
	method, path, query string
	header              http.Header
	body                map[string]any
}

// scripted is an httptest server answering from a script (the last answer
// repeats) and recording what it was sent.
type scripted struct {
	*httptest.Server
	mu      sync.Mutex
	script  []answer
	next    int
	request []seen
}

func newScripted(t *testing.T, script ...answer) *scripted {
	t.Helper()
	s := &scripted{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		s.mu.Lock()
		s.request = append(s.request, seen{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
		a := s.script[min(s.next, len(s.script)-1)]
		s.next++
		s.mu.Unlock()
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		if a.code != "" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(a.status)
			fmt.Fprintf(w, `{"type":"https://iam.dev/problems/%s","title":"x","status":%d,"detail":"scripted %s","code":%q,"correlationId":"c1"}`, a.code, a.status, a.code, a.code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		if a.body == "" {
			a.body = "{}"
		}
		io.WriteString(w, a.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.request...)
}

const allowed = `{"allowed":true,"reason":"allowed by policy p","region":"eu-west","consistencyToken":"ct1.9"}`

func checkReq() client.CheckRequest {
	return client.CheckRequest{Subject: "u-1", Action: "read", Resource: "hrn:here:data::org1:catalog/x"}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoints []string
		wantErr   bool
	}{
		{"none", nil, true},
		{"not a URL", []string{"::"}, true},
		{"no scheme", []string{"127.0.0.1:8080"}, true},
		{"ftp", []string{"ftp://x"}, true},
		{"two", []string{"http://127.0.0.1:1", "https://iam.example/base/"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.New(tc.endpoints)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got err %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestClient_Check(t *testing.T) {
	t.Run("request and answer", func(t *testing.T) {
		srv := newScripted(t, ok(allowed))
		c, err := client.New([]string{srv.URL + "/?region=us-east"}, client.WithToken("tok-1"))
		if err != nil {
			t.Fatal(err)
		}
		q := checkReq()
		q.Scope = "hrn:here:authorization::org1:project/p1"
		q.Consistency = client.Consistency{Mode: client.AtLeastAsFresh, Token: "ct1.5", Wait: 1500 * time.Millisecond}
		got, err := c.Check(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Allowed || got.Region != "eu-west" || got.ConsistencyToken != "ct1.9" || got.Endpoint == "" {
			t.Fatalf("got %+v, want the scripted answer", got)
		}
		r := srv.requests()[0]
		if r.method != "POST" || r.path != "/v1/check" || r.query != "region=us-east" {
			t.Fatalf("got %s %s?%s, want POST /v1/check?region=us-east", r.method, r.path, r.query)
		}
		if h := r.header.Get("Authorization"); h != "Bearer tok-1" {
			t.Fatalf("got Authorization %q, want Bearer tok-1", h)
		}
		want := map[string]any{"subject": "u-1", "action": "read", "resource": "hrn:here:data::org1:catalog/x",
			"scope":       "hrn:here:authorization::org1:project/p1",
			"consistency": map[string]any{"mode": "at_least_as_fresh", "token": "ct1.5", "waitMs": 1500.0}}
		if g, w := fmt.Sprint(r.body), fmt.Sprint(want); g != w {
			t.Fatalf("got body %s, want %s", g, w)
		}
		if r.header.Get("Idempotency-Key") != "" {
			t.Fatalf("a check is a read: got an Idempotency-Key")
		}
	})
	t.Run("subject token", func(t *testing.T) {
		srv := newScripted(t, ok(allowed))
		c, _ := client.New([]string{srv.URL}, client.WithToken("tok-1"))
		q := checkReq()
		q.Subject, q.SubjectToken = "", "callers-token"
		if _, err := c.Check(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		r := srv.requests()[0]
		if _, named := r.body["subject"]; named || r.body["subjectToken"] != "callers-token" {
			t.Fatalf("got body %v, want subjectToken in place of subject", r.body)
		}
	})
	t.Run("api key", func(t *testing.T) {
		srv := newScripted(t, ok(allowed))
		c, _ := client.New([]string{srv.URL}, client.WithAPIKey("k-1.secret"))
		if _, err := c.Check(context.Background(), checkReq()); err != nil {
			t.Fatal(err)
		}
		r := srv.requests()[0]
		if r.header.Get("X-API-Key") != "k-1.secret" || r.header.Get("Authorization") != "" {
			t.Fatalf("got X-API-Key %q Authorization %q, want the key alone", r.header.Get("X-API-Key"), r.header.Get("Authorization"))
		}
		if _, ok := r.body["consistency"]; ok {
			t.Fatalf("got consistency %v, want none (server default) outside a session", r.body["consistency"])
		}
	})
}

// TestClient_BackoffSchedule checks the exponential schedule on one
// endpoint: interval k is drawn from I·m^k·[1−j, 1+j], capped at the max.
func TestClient_BackoffSchedule(t *testing.T) {
	const (
		initial = 100 * time.Millisecond
		maxIv   = 1 * time.Second
		mult    = 2.0
	)
	for _, tc := range []struct {
		name   string
		jitter float64
		runs   int
	}{
		{"no jitter", 0, 1},
		{"jitter 0.5", 0.5, 20},
		{"jitter 0.2", 0.2, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for run := 0; run < tc.runs; run++ {
				script := make([]answer, 0, 8)
				for range 7 {
					script = append(script, problem(503, "unavailable", ""))
				}
				srv := newScripted(t, append(script, ok(allowed))...)
				ft := newFakeTime()
				c, _ := client.New([]string{srv.URL}, append(ft.options(),
					client.WithBackoff(initial, maxIv, mult, tc.jitter), client.WithMaxElapsedTime(time.Minute))...)
				if _, err := c.Check(context.Background(), checkReq()); err != nil {
					t.Fatal(err)
				}
				slept := ft.timers()
				if len(slept) != 7 {
					t.Fatalf("got %d sleeps, want 7", len(slept))
				}
				for k, d := range slept {
					iv := min(time.Duration(float64(initial)*math.Pow(mult, float64(k))), maxIv)
					lo := time.Duration(float64(iv) * (1 - tc.jitter))
					hi := time.Duration(float64(iv)*(1+tc.jitter)) + 1 // backoff's interval is closed
					if d < lo || d > hi {
						t.Fatalf("sleep %d: got %v, want within [%v, %v]", k, d, lo, hi)
					}
					if tc.jitter == 0 && d != iv {
						t.Fatalf("sleep %d: got %v, want exactly %v", k, d, iv)
					}
				}
				st := c.Stats()
				if st.Retries[client.CauseUnavailable] != 7 || st.Attempts != 8 || st.Calls != 1 {
					t.Fatalf("got stats %+v, want 7 retries (unavailable) over 8 attempts", st)
				}
			}
		})
	}
}

func TestClient_RetryAfter(t *testing.T) {
	date := func(ft *fakeTime, d time.Duration) string { return ft.clock.Now().Add(d).UTC().Format(http.TimeFormat) }
	for _, tc := range []struct {
		name       string
		status     int
		code       string
		retryAfter func(ft *fakeTime) string
		cause      client.Cause
		want       time.Duration
	}{
		{"429 seconds", 429, "rate_limited", func(*fakeTime) string { return "3" }, client.CauseRateLimited, 3 * time.Second},
		{"503 replica_behind seconds", 503, "replica_behind", func(*fakeTime) string { return "2" }, client.CauseReplicaBehind, 2 * time.Second},
		{"503 unavailable date", 503, "unavailable", func(ft *fakeTime) string { return date(ft, 5*time.Second) }, client.CauseUnavailable, 5 * time.Second},
		{"shorter than the backoff", 429, "rate_limited", func(*fakeTime) string { return "0" }, client.CauseRateLimited, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeTime()
			srv := newScripted(t, problem(tc.status, tc.code, tc.retryAfter(ft)), ok(allowed))
			var events []client.RetryEvent
			c, _ := client.New([]string{srv.URL}, append(ft.options(), client.WithBackoff(100*time.Millisecond, time.Second, 2, 0),
				client.WithOnRetry(func(e client.RetryEvent) { events = append(events, e) }))...)
			if _, err := c.Check(context.Background(), checkReq()); err != nil {
				t.Fatal(err)
			}
			slept := ft.timers()
			want := max(tc.want, 100*time.Millisecond)
			if len(slept) != 1 || slept[0] != want {
				t.Fatalf("got sleeps %v, want [%v]", slept, want)
			}
			if len(events) != 1 || events[0].Cause != tc.cause || events[0].Failover || events[0].RetryAfter != tc.want || events[0].Delay != want {
				t.Fatalf("got events %+v, want one retry for %s after %v", events, tc.cause, want)
			}
		})
	}
	t.Run("real clock", func(t *testing.T) {
		// No fakes: the client really does not come back sooner.
		srv := newScripted(t, problem(429, "rate_limited", "1"), ok(allowed))
		c, _ := client.New([]string{srv.URL}, client.WithBackoff(10*time.Millisecond, 0, 0, 0))
		start := time.Now()
		if _, err := c.Check(context.Background(), checkReq()); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < time.Second {
			t.Fatalf("got the retry after %v, want at least the Retry-After of 1s", el)
		}
	})
}

func TestClient_Failover(t *testing.T) {
	t.Run("replica_behind retries then fails over", func(t *testing.T) {
		behind := newScripted(t, problem(503, "replica_behind", "1"))
		fresh := newScripted(t, ok(allowed))
		ft := newFakeTime()
		var events []client.RetryEvent
		c, _ := client.New([]string{behind.URL, fresh.URL}, append(ft.options(),
			client.WithOnRetry(func(e client.RetryEvent) { events = append(events, e) }))...)
		got, err := c.Check(context.Background(), checkReq())
		if err != nil {
			t.Fatal(err)
		}
		if got.Endpoint != fresh.URL || !got.Allowed {
			t.Fatalf("got answer from %s, want %s", got.Endpoint, fresh.URL)
		}
		if n := len(behind.requests()); n != client.DefaultAttemptsPerEndpoint {
			t.Fatalf("got %d attempts on the behind endpoint, want %d", n, client.DefaultAttemptsPerEndpoint)
		}
		slept := ft.timers()
		if len(slept) != 2 || slept[0] < time.Second || slept[1] != 0 {
			t.Fatalf("got sleeps %v, want [>=1s (Retry-After), 0 (failover at once)]", slept)
		}
		st := c.Stats()
		if st.Retries[client.CauseReplicaBehind] != 1 || st.Failovers[client.CauseReplicaBehind] != 1 {
			t.Fatalf("got retries %v failovers %v, want one of each for replica_behind", st.Retries, st.Failovers)
		}
		if len(events) != 2 || events[1].Endpoint != behind.URL || events[1].Next != fresh.URL || !events[1].Failover {
			t.Fatalf("got events %+v, want a retry then a failover to %s", events, fresh.URL)
		}
	})
	t.Run("Retry-After past the budget fails over at once", func(t *testing.T) {
		behind := newScripted(t, problem(503, "replica_behind", "60"))
		fresh := newScripted(t, ok(allowed))
		ft := newFakeTime()
		c, _ := client.New([]string{behind.URL, fresh.URL}, append(ft.options(), client.WithMaxElapsedTime(10*time.Second))...)
		if _, err := c.Check(context.Background(), checkReq()); err != nil {
			t.Fatal(err)
		}
		if n := len(behind.requests()); n != 1 {
			t.Fatalf("got %d attempts on the behind endpoint, want 1", n)
		}
		if slept := ft.timers(); len(slept) != 1 || slept[0] != 0 {
			t.Fatalf("got sleeps %v, want [0]", slept)
		}
	})
	t.Run("network error", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + ln.Addr().String()
		ln.Close() // connection refused from now on
		fresh := newScripted(t, ok(allowed))
		ft := newFakeTime()
		c, _ := client.New([]string{dead, fresh.URL}, append(ft.options(), client.WithAttemptsPerEndpoint(1))...)
		got, err := c.Check(context.Background(), checkReq())
		if err != nil {
			t.Fatal(err)
		}
		if got.Endpoint != fresh.URL {
			t.Fatalf("got answer from %s, want %s", got.Endpoint, fresh.URL)
		}
		if st := c.Stats(); st.Failovers[client.CauseNetwork] != 1 {
			t.Fatalf("got failovers %v, want 1 for network", st.Failovers)
		}
	})
	t.Run("a new round honours each Retry-After", func(t *testing.T) {
		a := newScripted(t, problem(429, "rate_limited", "2"), ok(allowed))
		b := newScripted(t, problem(429, "rate_limited", "5"))
		ft := newFakeTime()
		c, _ := client.New([]string{a.URL, b.URL}, append(ft.options(), client.WithAttemptsPerEndpoint(1),
			client.WithBackoff(100*time.Millisecond, time.Second, 2, 0))...)
		got, err := c.Check(context.Background(), checkReq())
		if err != nil {
			t.Fatal(err)
		}
		if got.Endpoint != a.URL {
			t.Fatalf("got answer from %s, want %s", got.Endpoint, a.URL)
		}
		// a (429, 2s) → b at once (429, 5s) → a again, 2s after its answer.
		if slept := ft.timers(); len(slept) != 2 || slept[0] != 0 || slept[1] != 2*time.Second {
			t.Fatalf("got sleeps %v, want [0 2s]", slept)
		}
	})
	t.Run("gives up after the budget", func(t *testing.T) {
		a := newScripted(t, problem(503, "replica_behind", "1"))
		b := newScripted(t, problem(503, "replica_behind", "1"))
		ft := newFakeTime()
		c, _ := client.New([]string{a.URL, b.URL}, append(ft.options(), client.WithMaxElapsedTime(5*time.Second))...)
		_, err := c.Check(context.Background(), checkReq())
		if !errors.Is(err, client.ErrReplicaBehind) {
			t.Fatalf("got %v, want replica_behind", err)
		}
		var e *client.Error
		if !errors.As(err, &e) || e.Status != 503 || e.RetryAfter != time.Second {
			t.Fatalf("got %#v, want the last problem details with Retry-After 1s", e)
		}
		var total time.Duration
		for _, d := range ft.timers() {
			total += d
		}
		if total > 5*time.Second {
			t.Fatalf("slept %v in all, want at most the 5s budget", total)
		}
		if st := c.Stats(); st.GaveUp != 1 || st.Failovers[client.CauseReplicaBehind] == 0 {
			t.Fatalf("got stats %+v, want one call given up after failovers", st)
		}
	})
}

func TestClient_NotRetried(t *testing.T) {
	for _, tc := range []struct {
		status   int
		code     string
		sentinel error
	}{
		{400, "invalid_argument", client.ErrInvalidArgument},
		{401, "unauthenticated", client.ErrUnauthenticated},
		{403, "permission_denied", client.ErrPermissionDenied},
		{404, "not_found", client.ErrNotFound},
		{409, "conflict", client.ErrConflict},
		{500, "internal", nil},
	} {
		t.Run(tc.code, func(t *testing.T) {
			srv := newScripted(t, problem(tc.status, tc.code, ""), ok(allowed))
			other := newScripted(t, ok(allowed))
			c, _ := client.New([]string{srv.URL, other.URL})
			_, err := c.Check(context.Background(), checkReq())
			if client.Code(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Fatalf("got %v, want errors.Is %v", err, tc.sentinel)
			}
			if len(srv.requests()) != 1 || len(other.requests()) != 0 {
				t.Fatalf("got %d and %d attempts, want 1 and 0", len(srv.requests()), len(other.requests()))
			}
		})
	}
	t.Run("context cancelled while waiting", func(t *testing.T) {
		srv := newScripted(t, problem(429, "rate_limited", "5"))
		c, _ := client.New([]string{srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := c.Check(ctx, checkReq())
		if !errors.Is(err, context.Canceled) || !errors.Is(err, client.ErrRateLimited) {
			t.Fatalf("got %v, want the context's error and the last answer", err)
		}
	})
	t.Run("no wait past the context's deadline", func(t *testing.T) {
		srv := newScripted(t, problem(429, "rate_limited", "5"))
		c, _ := client.New([]string{srv.URL})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Check(ctx, checkReq())
		if !errors.Is(err, client.ErrRateLimited) || time.Since(start) > time.Second {
			t.Fatalf("got %v after %v, want the 429 at once (its Retry-After is past the deadline)", err, time.Since(start))
		}
	})
}

func TestClient_AttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the handler end so Close returns
	fresh := newScripted(t, ok(allowed))
	c, _ := client.New([]string{slow.URL, fresh.URL}, client.WithAttemptTimeout(100*time.Millisecond), client.WithAttemptsPerEndpoint(1))
	got, err := c.Check(context.Background(), checkReq())
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != fresh.URL {
		t.Fatalf("got answer from %s, want %s", got.Endpoint, fresh.URL)
	}
	if st := c.Stats(); st.Failovers[client.CauseTimeout] != 1 {
		t.Fatalf("got failovers %v, want 1 for timeout", st.Failovers)
	}
}

func TestClient_Writes(t *testing.T) {
	t.Run("one Idempotency-Key per logical write, kept across retries and failover", func(t *testing.T) {
		a := newScripted(t, problem(503, "unavailable", ""))
		b := newScripted(t, answer{status: 201, body: `{"id":"u-1","hrn":"hrn:x","email":"ann@example.com","name":"Ann","status":"active","consistencyToken":"ct1.a"}`,
			header: map[string]string{"Consistency-Token": "ct1.a", "Idempotent-Replayed": "true"}})
		ft := newFakeTime()
		c, _ := client.New([]string{a.URL, b.URL}, ft.options()...)
		u, err := c.CreateUser(context.Background(), "ann@example.com", "Ann", "")
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != "u-1" || u.ConsistencyToken != "ct1.a" || !u.Replayed || u.Endpoint != b.URL {
			t.Fatalf("got %+v, want the created user, replayed, from %s", u, b.URL)
		}
		keys := map[string]bool{}
		for _, r := range append(a.requests(), b.requests()...) {
			keys[r.header.Get("Idempotency-Key")] = true
		}
		if len(keys) != 1 || keys[""] {
			t.Fatalf("got keys %v over 3 attempts, want one non-empty key", keys)
		}
		if _, err := c.CreateGroup(context.Background(), "g"); err != nil {
			t.Fatal(err)
		}
		if k := b.requests()[1].header.Get("Idempotency-Key"); keys[k] || k == "" {
			t.Fatalf("got key %q for a second write, want a new one", k)
		}
	})
	t.Run("never retried without a key", func(t *testing.T) {
		a := newScripted(t, problem(503, "unavailable", "1"))
		b := newScripted(t, ok(`{}`))
		c, _ := client.New([]string{a.URL, b.URL}, client.WithoutIdempotencyKeys())
		_, err := c.AttachPolicy(context.Background(), "pol-1", "g-1")
		if !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("got %v, want unavailable", err)
		}
		if len(a.requests()) != 1 || len(b.requests()) != 0 || a.requests()[0].header.Get("Idempotency-Key") != "" {
			t.Fatalf("got %d and %d attempts, want 1 and 0, without a key", len(a.requests()), len(b.requests()))
		}
	})
	t.Run("paths are escaped", func(t *testing.T) {
		srv := newScripted(t, ok(`{"consistencyToken":"ct1.b"}`))
		c, _ := client.New([]string{srv.URL + "/base"})
		if _, err := c.AddProjectResource(context.Background(), "p-1", "hrn:here:data::org1:catalog/x y", "home"); err != nil {
			t.Fatal(err)
		}
		r := srv.requests()[0]
		if want := "/base/v1/projects/p-1/resources/hrn:here:data::org1:catalog%2Fx%20y"; r.method != "PUT" || r.path != want {
			t.Fatalf("got %s %s, want PUT %s", r.method, r.path, want)
		}
		if r.body["relation"] != "home" {
			t.Fatalf("got body %v, want relation home", r.body)
		}
	})
}

func TestSession(t *testing.T) {
	srv := newScripted(t,
		ok(`{"consistencyToken":"ct1.z"}`, "Consistency-Token", "ct1.z"), // a write at 35
		ok(allowed),                        // a check answered at 9: must not move the session back
		ok(`{"consistencyToken":"ct1.5"}`), // an older write answered late
		ok(`{"replicas":[]}`),
	)
	c, _ := client.New([]string{srv.URL})
	s := c.Session()
	ctx := context.Background()
	if _, err := s.AddMember(ctx, "g-1", "u-1"); err != nil {
		t.Fatal(err)
	}
	if s.Token() != "ct1.z" {
		t.Fatalf("got session token %q, want ct1.z", s.Token())
	}
	if _, err := s.Check(ctx, checkReq()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMember(ctx, "g-1", "u-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replicas(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	cons, _ := reqs[1].body["consistency"].(map[string]any)
	if cons["mode"] != "at_least_as_fresh" || cons["token"] != "ct1.z" {
		t.Fatalf("got consistency %v, want at_least_as_fresh ct1.z", cons)
	}
	if s.Token() != "ct1.z" {
		t.Fatalf("got session token %q, want it to stay at the newest, ct1.z", s.Token())
	}
	if h := reqs[3].header.Get("Consistency-Token"); h != "ct1.z" {
		t.Fatalf("got Consistency-Token %q on a read, want ct1.z", h)
	}
	if c.SessionToken() != "" {
		t.Fatalf("the client outside the session got token %q, want none", c.SessionToken())
	}
	if st := c.Stats(); st.Calls != 4 {
		t.Fatalf("got %d calls on the shared counters, want 4", st.Calls)
	}
}

func TestError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "upstream gone")
	}))
	t.Cleanup(srv.Close)
	ft := newFakeTime()
	c, _ := client.New([]string{srv.URL}, append(ft.options(), client.WithMaxElapsedTime(time.Second))...)
	_, err := c.Check(context.Background(), checkReq())
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeUnavailable || e.Status != 502 || !strings.Contains(e.Detail, "upstream gone") {
		t.Fatalf("got %v, want a 502 read as unavailable", err)
	}
	if !strings.Contains(err.Error(), "gave up after "+strconv.Itoa(int(c.Stats().Attempts))+" attempts") {
		t.Fatalf("got %q, want it to say how many attempts were made", err)
	}
}
