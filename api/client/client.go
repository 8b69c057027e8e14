package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Client calls the iam API on an ordered list of endpoints. It is safe for
// concurrent use; a Session made from it shares its connections and counters.
type Client struct {
	opts      options
	endpoints []*url.URL
	stats     *counters
	session   *sessionState // nil outside a Session
}

// New returns a client of endpoints, in order of preference (nearest
// first). An endpoint is a base URL ("https://iam.eu-west.example"); its
// query parameters are sent with every request, so in the all-in-one mode
// "http://127.0.0.1:8080?region=us-east" names a region of one process.
func New(endpoints []string, opts ...Option) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, ErrNoEndpoints
	}
	c := &Client{opts: defaultOptions(), stats: &counters{}}
	for _, o := range opts {
		o(&c.opts)
	}
	for _, e := range endpoints {
		u, err := url.Parse(strings.TrimSpace(e))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("client: endpoint %q is not an http(s) URL", e)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.Fragment = ""
		c.endpoints = append(c.endpoints, u)
	}
	return c, nil
}

// Endpoints returns the endpoints in order of preference.
func (c *Client) Endpoints() []string {
	out := make([]string, len(c.endpoints))
	for i, u := range c.endpoints {
		out[i] = u.String()
	}
	return out
}

// Stats returns a snapshot of the counters of retries and failovers by cause.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// request is one logical call.
type request struct {
	method string
	path   string // escaped, from the API root ("/v1/check")
	query  url.Values
	body   any
	// read: answered by a replica, so a Session sends its token.
	read bool
	// freshAs, if set, is sent as the Consistency-Token header: the state
	// the caller's own credentials are judged on (a check's token).
	freshAs string
	// write: changes state; gets an Idempotency-Key.
	write   bool
	idemKey string
	// extra is added to the attempt timeout (a check's own wait).
	extra time.Duration
	// noAuth: a public endpoint.
	noAuth bool
}

// meta is what a successful answer says beside its body.
type meta struct {
	Endpoint         string
	ConsistencyToken string
	Replayed         bool
}

// do runs req with retries and failover and decodes a 2xx body into out.
func (c *Client) do(ctx context.Context, req *request, out any) (meta, error) {
	var body []byte
	if req.body != nil {
		var err error
		if body, err = json.Marshal(req.body); err != nil {
			return meta{}, fmt.Errorf("client: encode %s %s: %w", req.method, req.path, err)
		}
	}
	retrySafe := !req.write
	if req.write && !c.opts.noIdem {
		if req.idemKey == "" {
			req.idemKey = newIdempotencyKey()
		}
	}
	if req.write && req.idemKey != "" {
		retrySafe = true
	}
	op := req.method + " " + req.path
	c.stats.calls.Add(1)

	sched := newSchedule(&c.opts, len(c.endpoints))
	if dl, ok := ctx.Deadline(); ok {
		// The context's deadline is on the real clock; the schedule may
		// read a fake one.
		sched.ctxDeadline = c.opts.clock.Now().Add(time.Until(dl))
	}
	var timer backoff.Timer
	if c.opts.newTimer != nil {
		timer = c.opts.newTimer()
	}
	var (
		result   meta
		attempt  int
		lastErr  error
		lastCaus Cause
	)
	operation := func() error {
		attempt++
		c.stats.attempts.Add(1)
		sched.retryAfter = 0
		m, err := c.attempt(ctx, c.endpoints[sched.cur], req, body, out)
		if err == nil {
			result = m
			return nil
		}
		cause, retry := classify(ctx, err)
		if !retry || !retrySafe {
			return backoff.Permanent(err)
		}
		var e *Error
		if errors.As(err, &e) {
			sched.retryAfter = e.RetryAfter
		}
		lastErr, lastCaus = err, cause
		return err
	}
	notify := func(err error, d time.Duration) {
		i := causeIndex(lastCaus)
		if sched.failover {
			c.stats.failovers[i].Add(1)
		} else {
			c.stats.retries[i].Add(1)
		}
		if c.opts.onRetry != nil {
			c.opts.onRetry(RetryEvent{Op: op, Cause: lastCaus, Err: err, Attempt: attempt,
				Endpoint: c.endpoints[sched.from].String(), Next: c.endpoints[sched.cur].String(),
				Failover: sched.failover, Delay: d, RetryAfter: sched.retryAfter})
		}
	}
	err := backoff.RetryNotifyWithTimer(operation, backoff.WithContext(sched, ctx), notify, timer)
	if err == nil {
		c.observe(result.ConsistencyToken)
		return result, nil
	}
	if lastErr != nil {
		c.stats.gaveUp.Add(1)
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, lastErr) {
			return meta{}, fmt.Errorf("%s: %w after %d attempts; last: %w", op, cerr, attempt, lastErr)
		}
		if attempt > 1 {
			verb := "gave up"
			if !errors.Is(err, lastErr) {
				verb = "failed" // on an error not worth retrying, after retries
			}
			return meta{}, fmt.Errorf("%s: %s after %d attempts: %w", op, verb, attempt, err)
		}
	}
	return meta{}, err
}

// attempt sends req once to ep.
func (c *Client) attempt(ctx context.Context, ep *url.URL, req *request, body []byte, out any) (meta, error) {
	actx, cancel := context.WithTimeout(ctx, c.opts.attemptTimeout+req.extra)
	defer cancel()
	u := *ep
	unescaped, err := url.PathUnescape(req.path)
	if err != nil {
		return meta{}, backoff.Permanent(fmt.Errorf("client: path %q: %w", req.path, err))
	}
	u.Path = ep.Path + unescaped
	u.RawPath = ep.EscapedPath() + req.path
	q := ep.Query()
	for k, vs := range req.query {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(actx, req.method, u.String(), rdr)
	if err != nil {
		return meta{}, backoff.Permanent(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json")
	if c.opts.userAgent != "" {
		hr.Header.Set("User-Agent", c.opts.userAgent)
	}
	if req.idemKey != "" {
		hr.Header.Set("Idempotency-Key", req.idemKey)
	}
	if req.freshAs != "" {
		hr.Header.Set("Consistency-Token", req.freshAs)
	} else if req.read {
		if t := c.SessionToken(); t != "" && req.method == http.MethodGet {
			hr.Header.Set("Consistency-Token", t)
		}
	}
	if !req.noAuth {
		if err := c.authorize(ctx, hr); err != nil {
			return meta{}, err
		}
	}
	resp, err := c.opts.httpClient.Do(hr)
	if err != nil {
		return meta{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return meta{}, fmt.Errorf("read answer from %s: %w", ep.Host, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return meta{}, parseError(resp, data, ep.String(), c.opts.clock.Now())
	}
	m := meta{Endpoint: ep.String(), ConsistencyToken: resp.Header.Get("Consistency-Token"),
		Replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return meta{}, backoff.Permanent(fmt.Errorf("decode answer from %s: %w", ep.Host, err))
		}
	}
	return m, nil
}

// authorize sets the request's credentials: the API key, or a bearer token.
func (c *Client) authorize(ctx context.Context, hr *http.Request) error {
	switch {
	case c.opts.apiKey != "":
		hr.Header.Set("X-API-Key", c.opts.apiKey)
	case c.opts.token != nil:
		tok, err := c.opts.token(ctx)
		if err != nil {
			return &tokenError{err}
		}
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "iamc-" + hex.EncodeToString(b[:])
}

// sessionState is a Session's latest consistency token.
type sessionState struct {
	mu    sync.Mutex
	token string
}

// observe records tok in the session, if any.
func (c *Client) observe(tok string) {
	if c.session == nil || tok == "" {
		return
	}
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	if newerToken(tok, c.session.token) {
		c.session.token = tok
	}
}

// SessionToken is the latest consistency token a Session has seen ("" for
// a Client that is not a Session, or before the first answer).
func (c *Client) SessionToken() string {
	if c.session == nil {
		return ""
	}
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	return c.session.token
}
