package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/api/auth"
)

// startIamd runs the all-in-one on a free port and a temp data dir (or dir,
// to restart on kept data), with cheap password hashing and no fsync.
func startIamd(tb testing.TB, dir string) *Main {
	tb.Helper()
	return startIamdWith(tb, func(c *Config) {
		if dir != "" {
			c.DataDir = dir
		}
	})
}

// startIamdCost is startIamd with the given argon2id cost.
func startIamdCost(tb testing.TB, p auth.HashParams) *Main {
	tb.Helper()
	return startIamdWith(tb, func(c *Config) { c.HashParams = p })
}

// startIamdWith is startIamd with the config adjusted by fn before Run.
func startIamdWith(tb testing.TB, fn func(*Config)) *Main {
	tb.Helper()
	m := NewMain()
	m.Config.HTTPAddr = "127.0.0.1:0"
	m.Config.DataDir = tb.TempDir()
	m.Config.SyncAlways = false
	m.Config.HashParams = auth.LowCostHashParams()
	m.Config.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m.Config.Stderr = io.Discard
	fn(&m.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		m.Close()
		tb.Fatalf("start iamd: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// client talks to a running iamd as one identity.
type client struct {
	tb     testing.TB
	base   string
	token  string
	region string
	header http.Header
}

func (m *Main) url() string { return "http://" + m.Addr }

// adminClient returns a client holding a token of the bootstrap admin.
func adminClient(tb testing.TB, m *Main) *client {
	tb.Helper()
	if m.Bootstrap == nil {
		tb.Fatal("no bootstrap admin")
	}
	return &client{tb: tb, base: m.url(), token: clientToken(tb, m.url(), m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "")}
}

func clientToken(tb testing.TB, base, id, secret, scope string) string {
	tb.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("token: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK || out.AccessToken == "" {
		tb.Fatalf("token: got %d %q, want 200 and a token", resp.StatusCode, out.Error)
	}
	return out.AccessToken
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// do sends a request with a JSON body (nil for none, a string for raw bytes).
func (c *client) do(method, path string, body any, headers ...string) response {
	c.tb.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.tb.Fatal(err)
		}
		rdr = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rdr)
	if err != nil {
		c.tb.Fatal(err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.region != "" {
		req.Header.Set("Iam-Region", c.region)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &out.body)
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		c.tb.Errorf("%s %s: got %d %s, a 5xx other than 503 is never acceptable", method, path, resp.StatusCode, raw)
	}
	return out
}

// must sends a request and fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any, headers ...string) response {
	c.tb.Helper()
	r := c.do(method, path, body, headers...)
	if r.status != want {
		c.tb.Fatalf("%s %s: got %d %s, want %d", method, path, r.status, r.raw, want)
	}
	return r
}
