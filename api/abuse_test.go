package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// clientFrom is an HTTP client whose connections come from ip (Linux routes
// all of 127.0.0.0/8 to loopback), not following redirects: a second
// source address for the per-source limits.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: openapitest.Transport(t, tr), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// wantRetryProblem fails unless resp is status with Retry-After and problem
// details whose code is code.
func wantRetryProblem(t *testing.T, what string, resp *http.Response, status int, code string) {
	t.Helper()
	var p api.Problem
	_ = json.Unmarshal([]byte(bodyOf(resp)), &p)
	if resp.StatusCode != status || resp.Header.Get("Retry-After") == "" || p.Code != code || p.Status != status || p.Type == "" {
		t.Fatalf("%s: got %d Retry-After %q %s, want %d with Retry-After and problem details of code %s",
			what, resp.StatusCode, resp.Header.Get("Retry-After"), bodyOf(resp), status, code)
	}
}

// TestAPI_RateLimitsPerSource: a client id hammered from one address is
// throttled there only; its other users, from other addresses, get in. An
// account (or a client's secret) tried from many addresses is still bounded.
func TestAPI_RateLimitsPerSource(t *testing.T) {
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) {
		c.TokenRate, c.TokenBurst, c.SignInRate, c.SignInBurst = 0.001, 2, 0.001, 2
	})
	a, b, c, d := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3"), clientFrom(t, "127.0.0.4")
	tokenURL := daemontest.URL(f.m) + "/oauth2/token"
	token := func(hc *http.Client, secret string) *http.Response {
		t.Helper()
		resp, err := hc.PostForm(tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {f.clientID}, "client_secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		body := resp.Body
		bodyOf(resp) // kept for wantRetryProblem
		body.Close()
		return resp
	}

	t.Run("token endpoint", func(t *testing.T) {
		token(a, f.secret)
		token(a, f.secret)
		wantRetryProblem(t, "3rd token request from one address", token(a, f.secret), 429, "rate_limited")
		if got := token(b, f.secret).StatusCode; got != 200 {
			t.Fatalf("the same client from another address: got %d, want 200", got)
		}
		// Wrong secrets are bounded per client id over all addresses.
		token(c, "wrong")
		token(d, "wrong")
		wantRetryProblem(t, "3rd wrong secret, from a 3rd address", token(b, "wrong"), 429, "rate_limited")
	})

	t.Run("sign-in", func(t *testing.T) {
		conf := f.oauthConfig(f.clientID, f.secret)
		authURL := conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		for i := range 2 {
			if got := browserVia(t, a, authURL, "nobody"+strconv.Itoa(i)+"@example.com", "wrong password").StatusCode; got != 401 {
				t.Fatalf("sign-in %d from one address: got %d, want 401", i, got)
			}
		}
		if resp := browserVia(t, a, authURL, "nobody9@example.com", "wrong password"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("3rd sign-in from one address: got %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if got := browserVia(t, b, authURL, f.email, f.password).StatusCode; got != http.StatusFound {
			t.Fatalf("the app's user from another address: got %d, want 302", got)
		}
		// The account is limited however many addresses try it.
		if got := browserVia(t, c, authURL, f.email, "wrong password").StatusCode; got != 401 {
			t.Fatalf("wrong password from a 3rd address: got %d, want 401", got)
		}
		if got := browserVia(t, d, authURL, f.email, "wrong password").StatusCode; got != 429 {
			t.Fatalf("3rd attempt on one account from a 4th address: got %d, want 429", got)
		}
	})
}

// TestSourceOf: limits are keyed by the peer's address, an IPv6 host by its
// /64; X-Forwarded-For, which any client can send, is ignored.
func TestSourceOf(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:4711", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"not an address", "not an address"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Forwarded-For", "203.0.113.1")
		if got := api.SourceOf(r); got != tc.want {
			t.Errorf("RemoteAddr %q: got %q, want %q", tc.remote, got, tc.want)
		}
	}
}

// TestLimiter_LRU: the limiter holds at most its bound of buckets; fresh
// keys evict the one idle longest, never a key in use, so spraying keys
// does not reset a throttled caller's bucket.
func TestLimiter_LRU(t *testing.T) {
	const n = 4
	l := api.NewLimiter(0.001, 1, n)
	now := time.Now()
	l.Allow("idle", now)
	if !l.Allow("victim", now) || l.Allow("victim", now) {
		t.Fatal("victim: want its one token, then throttled")
	}
	for i := range 100 {
		l.Allow("spray"+strconv.Itoa(i), now)
		if l.Allow("victim", now) {
			t.Fatalf("after %d sprayed keys: victim allowed, want still throttled", i+1)
		}
		if got := l.Len(); got > n {
			t.Fatalf("after %d sprayed keys: got %d buckets, want at most %d", i+1, got, n)
		}
	}
	if !l.Allow("idle", now) {
		t.Fatal("idle key: throttled, want its bucket evicted (a fresh one)")
	}
}

// TestHashGate: at most n computations run at once; one that waits past the
// bound, or past its context, is refused.
func TestHashGate(t *testing.T) {
	g := api.NewHashGate(1, time.Minute)
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_ = g.Do(context.Background(), func() {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(2 * time.Millisecond)
				running.Add(-1)
			})
		})
	}
	wg.Wait()
	if got := peak.Load(); got != 1 {
		t.Fatalf("got %d computations at once, want 1", got)
	}

	short := api.NewHashGate(1, 10*time.Millisecond)
	hold, held := make(chan struct{}), make(chan struct{})
	go func() { _ = short.Do(context.Background(), func() { close(held); <-hold }) }()
	<-held
	defer close(hold)
	if err := short.Do(context.Background(), func() {}); !errors.Is(err, api.ErrHashBusy) {
		t.Fatalf("slot held past the wait: got %v, want ErrHashBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := short.Do(ctx, func() {}); !errors.Is(err, api.ErrHashBusy) {
		t.Fatalf("slot held, request gone: got %v, want ErrHashBusy", err)
	}
}

// TestAPI_HashBound: with one argon2id slot and costly hashes, concurrent
// sign-ins never hash two at once, and those that cannot get the slot in
// time answer 503 with Retry-After, not 500, rather than piling up.
func TestAPI_HashBound(t *testing.T) {
	m := daemontest.StartWith(t, func(c *daemon.Config) {
		c.HashParams, c.MaxConcurrentHashes, c.HashWait = auth.DefaultHashParams(), 1, 5*time.Millisecond
	})
	m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 1000, 1000 })
	admin := daemontest.AdminClient(t, m)
	app := admin.Must(201, "POST", "/v1/apps", map[string]any{"name": "Portal", "redirectUris": []string{"http://127.0.0.1/callback"}}).Str("id")
	cred := admin.Must(201, "POST", "/v1/apps/"+app+"/credentials", nil)
	conf := &oauth2.Config{ClientID: cred.Str("clientId"), RedirectURL: "http://127.0.0.1/callback",
		Endpoint: oauth2.Endpoint{AuthURL: daemontest.URL(m) + "/oauth2/authorize"}}
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	stop := make(chan struct{})
	var peak float64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if v := inFlight(m); v > peak {
				peak = v
			}
		}
	}()
	statuses := make(chan *http.Response, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { statuses <- browser(t, authURL, "nobody"+strconv.Itoa(i)+"@example.com", "wrong password") })
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(statuses)
	busy := 0
	for resp := range statuses {
		switch {
		case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
			busy++
		case resp.StatusCode != 401:
			t.Errorf("got %d Retry-After %q, want 401, or 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if busy == 0 {
		t.Error("8 sign-ins at once with one slot: none answered 503, want the excess refused")
	}
	if peak > 1 {
		t.Errorf("got %v argon2id computations at once, want at most 1", peak)
	}
	if metricValue(t, m, "iam_argon2id_refused_total") == "0" {
		t.Error("iam_argon2id_refused_total: 0, want the refusals counted")
	}
}

// inFlight reads iam_argon2id_in_flight (0 when it cannot), from any
// goroutine.
func inFlight(m *daemon.Main) float64 {
	resp, err := http.Get(daemontest.URL(m) + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "iam_argon2id_in_flight "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestPasswordReset_ConfirmAbuse: an unknown reset token is refused without
// any argon2id work, and confirmations are limited per source address.
func TestPasswordReset_ConfirmAbuse(t *testing.T) {
	f := newIDPFixture(t)
	anon := &daemontest.Client{TB: t, Base: daemontest.URL(f.m)}
	before := metricValue(t, f.m, "iam_argon2id_total")
	bad := map[string]any{"token": f.m.Bootstrap.Realm + ".not-a-token", "newPassword": "a new password"}
	if got := anon.Must(400, "POST", "/v1/passwordResets/confirm", bad); got.Str("code") != "invalid_argument" || got.Str("field") != "token" {
		t.Fatalf("unknown token: got %s, want invalid_argument on token", got.Raw)
	}
	if after := metricValue(t, f.m, "iam_argon2id_total"); after != before {
		t.Fatalf("unknown token: argon2id computations went from %s to %s, want none", before, after)
	}

	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 0.001, 2 })
	anon.Do("POST", "/v1/passwordResets/confirm", bad)
	anon.Do("POST", "/v1/passwordResets/confirm", bad)
	got := anon.Do("POST", "/v1/passwordResets/confirm", bad)
	if got.Status != 429 || got.Header.Get("Retry-After") == "" || got.Str("code") != "rate_limited" {
		t.Fatalf("3rd confirmation from one address: got %d Retry-After %q %s, want 429 rate_limited with Retry-After", got.Status, got.Header.Get("Retry-After"), got.Raw)
	}
}
