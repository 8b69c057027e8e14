// Package daemontest starts iamd in-process for end-to-end tests (of api,
// of the daemon's wiring, of the clients) and talks to it over HTTP: an
// all-in-one on 127.0.0.1:0 with a temp data dir, cheap password hashing,
// no fsync and quiet logs, and a Client holding one identity's token.
// Every helper fails the test on an unexpected error instead of returning
// it. Every request a helper sends, and its answer, is held to the OpenAPI
// document (package api/openapitest): a mismatch fails the test.
package daemontest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon"
)

// Start runs the all-in-one on a free port and a temp data dir (or dir,
// to restart on kept data), with cheap password hashing, no fsync and logs
// discarded, and closes it when the test ends.
func Start(tb testing.TB, dir string) *daemon.Main {
	tb.Helper()
	return StartWith(tb, func(c *daemon.Config) {
		if dir != "" {
			c.DataDir = dir
		}
	})
}

// StartCost is Start with the given argon2id cost.
func StartCost(tb testing.TB, p auth.HashParams) *daemon.Main {
	tb.Helper()
	return StartWith(tb, func(c *daemon.Config) { c.HashParams = p })
}

// StartWith is Start with the config adjusted by fn before Run.
func StartWith(tb testing.TB, fn func(*daemon.Config)) *daemon.Main {
	tb.Helper()
	m := daemon.NewMain()
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

// Client talks to a running iamd as one identity: Token (none when empty)
// as a bearer token, Region (when set) in Iam-Region, and Header on every
// request. Failures are reported to TB.
type Client struct {
	TB     testing.TB
	Base   string
	Token  string
	Region string
	Header http.Header
}

// URL is the base URL of m's HTTP API.
func URL(m *daemon.Main) string { return m.URL() }

// RegionIndex returns the index of region's replica and projector in m
// (m.Replicas(), m.Projectors()), failing the test when m serves no such
// region.
func RegionIndex(tb testing.TB, m *daemon.Main, region string) int {
	tb.Helper()
	for i, r := range m.Replicas() {
		if r.Region() == region {
			return i
		}
	}
	tb.Fatalf("no replica for region %s", region)
	return -1
}

// AdminClient returns a Client holding a token of the bootstrap admin.
func AdminClient(tb testing.TB, m *daemon.Main) *Client {
	tb.Helper()
	if m.Bootstrap == nil {
		tb.Fatal("no bootstrap admin")
	}
	return &Client{TB: tb, Base: URL(m), Token: ClientToken(tb, URL(m), m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "")}
}

// ClientToken gets a token by the client-credentials grant from the iamd
// at base, with scope when not empty.
func ClientToken(tb testing.TB, base, id, secret, scope string) string {
	tb.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := openapitest.Client(tb).Do(req)
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

// Response is a decoded answer: Body is the JSON object, if it was one.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Str returns the string at key of the body, or "".
func (r Response) Str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// Do sends a request with a JSON body (nil for none, a string or []byte
// for raw bytes) and headers as name, value pairs. A 5xx other than 503
// fails the test.
func (c *Client) Do(method, path string, body any, headers ...string) Response {
	c.TB.Helper()
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
			c.TB.Fatal(err)
		}
		rdr = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.Base+path, rdr)
	if err != nil {
		c.TB.Fatal(err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Region != "" {
		req.Header.Set("Iam-Region", c.Region)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := openapitest.Client(c.TB).Do(req)
	if err != nil {
		c.TB.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := Response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		c.TB.Errorf("%s %s: got %d %s, a 5xx other than 503 is never acceptable", method, path, resp.StatusCode, raw)
	}
	return out
}

// Must sends a request and fails the test unless the status is want.
func (c *Client) Must(want int, method, path string, body any, headers ...string) Response {
	c.TB.Helper()
	r := c.Do(method, path, body, headers...)
	if r.Status != want {
		c.TB.Fatalf("%s %s: got %d %s, want %d", method, path, r.Status, r.Raw, want)
	}
	return r
}

// With returns a copy of c that sends token (none when empty).
func (c *Client) With(token string) *Client {
	cc := *c
	cc.Token = token
	return &cc
}

// AppendedSince returns the tokens of the realm's changes after token
// `after`, up to and including a sentinel write made now (the last one
// returned). The log's own entries (heartbeats) are not the realm's, so
// unlike the log head this counts only what writes appended.
func AppendedSince(t *testing.T, c *Client, after string) []string {
	t.Helper()
	sentinel := c.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "sentinel"}).Str("consistencyToken")
	s := OpenFeed(t, c.Base, c.Token, after)
	defer s.Close()
	var ids []string
	for _, ev := range s.Until(t, sentinel) {
		ids = append(ids, ev.ID)
	}
	return ids
}

// ListIDs walks every page of GET path with limit and returns the ids in
// order, failing on a repeat.
func ListIDs(c *Client, path string, limit int) []string {
	c.TB.Helper()
	var ids []string
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		if page > 1000 {
			c.TB.Fatalf("%s: more than 1000 pages", path)
		}
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		if token != "" {
			q.Set("pageToken", token)
		}
		r := c.Must(http.StatusOK, "GET", path+"?"+q.Encode(), nil)
		items, _ := r.Body["items"].([]any)
		if len(items) > limit {
			c.TB.Errorf("%s: got %d items on a page, want at most %d", path, len(items), limit)
		}
		for _, it := range items {
			id, _ := it.(map[string]any)["id"].(string)
			if seen[id] {
				c.TB.Errorf("%s: %s listed twice", path, id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		token = r.Str("nextPageToken")
		if token == "" {
			return ids
		}
		if len(items) == 0 {
			c.TB.Fatalf("%s: an empty page with a next page token", path)
		}
	}
}

// SSEEvent is one Server-Sent Event.
type SSEEvent struct{ ID, Event, Data string }

// ReadSSE parses events from r into out until r ends; raw receives every
// byte read.
func ReadSSE(r io.Reader, raw *bytes.Buffer, out chan<- SSEEvent) error {
	br := bufio.NewReader(io.TeeReader(r, raw))
	var ev SSEEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if ev != (SSEEvent{}) {
				out <- ev
			}
			ev = SSEEvent{}
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			ev.Data += value
		}
	}
}

// ChangeStream is an open GET /v1/changes.
type ChangeStream struct {
	events chan SSEEvent
	raw    *bytes.Buffer
	mu     *sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// OpenFeed opens GET /v1/changes on base with token, resuming after
// lastEventID ("" from the first), for at most 20s.
func OpenFeed(t *testing.T, base, token, lastEventID string) *ChangeStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/changes", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := openapitest.Client(t).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("GET /v1/changes: got %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &ChangeStream{events: make(chan SSEEvent, 1024), raw: &bytes.Buffer{}, mu: &sync.Mutex{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		var buf bytes.Buffer
		_ = ReadSSE(resp.Body, &buf, s.events)
		s.mu.Lock()
		s.raw.Write(buf.Bytes())
		s.mu.Unlock()
	}()
	t.Cleanup(s.Close)
	return s
}

// Close ends the stream and waits for its reader. Calling it again is fine.
func (s *ChangeStream) Close() { s.cancel(); <-s.done }

// Done is closed once the stream has ended, by the server or by Close.
func (s *ChangeStream) Done() <-chan struct{} { return s.done }

// Raw returns every byte the stream has read, once it is closed.
func (s *ChangeStream) Raw() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// Until collects change events up to and including token, skipping
// checkpoints (whose ids must not go backwards).
func (s *ChangeStream) Until(t *testing.T, token string) []SSEEvent {
	t.Helper()
	want, _ := api.ParseToken("t", token)
	var out []SSEEvent
	var last uint64
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-s.events:
			seq, err := api.ParseToken("id", ev.ID)
			if err != nil {
				t.Fatalf("event id %q is not a token: %v", ev.ID, err)
			}
			if ev.Event == "checkpoint" {
				if seq < last {
					t.Errorf("checkpoint %s went back from %d", ev.ID, last)
				}
				continue
			}
			if seq <= last && last != 0 {
				t.Errorf("event %s after %d: ids must increase", ev.ID, last)
			}
			last = seq
			out = append(out, ev)
			if seq >= want {
				return out
			}
		case <-timeout:
			t.Fatalf("no event %s within 15s; got %d events", token, len(out))
		}
	}
}

// GetChanges opens GET /v1/changes on base with token, bounded by ctx, and
// returns the response as it is (status unchecked); the test closes it.
func GetChanges(ctx context.Context, tb testing.TB, base, token string) *http.Response {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/changes", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := openapitest.Client(tb).Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}
