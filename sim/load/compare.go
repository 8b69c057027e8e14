package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is a comparison of iam against the bare server.
type Config struct {
	// Duration each side is measured; Conns concurrent connections each.
	Duration time.Duration
	Conns    int
	Warmup   time.Duration
	// Mode is the checks' consistency mode: minimize_latency,
	// at_least_as_fresh (at the setup's last token) or fully_consistent.
	Mode string
	// Auth is how iam's caller authenticates: "bearer" (an access token)
	// or "apikey" (X-API-Key).
	Auth string
	// Users and Resources size the data the checks rotate through.
	Users, Resources int
	// Dir holds iam's data; empty: a temporary directory, removed after.
	Dir string
	// Fsync makes the log fsync every write, as iamd does by default.
	Fsync bool
	// TLS compares iam over HTTPS against iam over plaintext HTTP (two
	// stacks alike but for their listener) instead of iam against the bare
	// server.
	TLS    bool
	Logger *slog.Logger
}

// DefaultConfig is 5s per side over 32 connections.
func DefaultConfig() Config {
	return Config{Duration: 5 * time.Second, Conns: 32, Warmup: 500 * time.Millisecond, Mode: "minimize_latency",
		Auth: "bearer", Users: 8, Resources: 64, Fsync: true}
}

// Validate bounds the run: it is a measurement, not a stress test.
func (c Config) Validate() error {
	switch {
	case c.Duration <= 0 || c.Duration > 5*time.Minute:
		return errors.New("-duration must be from 1ns to 5m")
	case c.Conns < 1 || c.Conns > 1024:
		return errors.New("-conns must be from 1 to 1024")
	case c.Warmup < 0 || c.Warmup > time.Minute:
		return errors.New("-warmup must be from 0 to 1m")
	case c.Mode != "minimize_latency" && c.Mode != "at_least_as_fresh" && c.Mode != "fully_consistent":
		return fmt.Errorf("-mode %q: want minimize_latency, at_least_as_fresh or fully_consistent", c.Mode)
	case c.Auth != "bearer" && c.Auth != "apikey":
		return fmt.Errorf("-auth %q: want bearer or apikey", c.Auth)
	case c.Users < 1 || c.Users > 1000 || c.Resources < 1 || c.Resources > 100000:
		return errors.New("-users must be from 1 to 1000 and -resources from 1 to 100000")
	}
	return nil
}

// Report is both sides' figures: Base is the floor (the bare server, or
// iam over plaintext HTTP with Config.TLS), Measured is iam (over HTTPS
// with Config.TLS).
type Report struct {
	Base, Measured Result
}

// Ratio is Measured's throughput as a fraction of Base's.
func (r Report) Ratio() float64 {
	if r.Base.Rate() == 0 {
		return 0
	}
	return r.Measured.Rate() / r.Base.Rate()
}

// Compare starts iam and the bare server on loopback, loads iam with users,
// policies and a checking app, and drives both with the same checks for
// the same time and concurrency, writing progress to out.
func Compare(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.TLS {
		dir, cleanup, err := dataDir(&cfg)
		if err != nil {
			return Report{}, err
		}
		defer cleanup()
		return compareTLS(ctx, cfg, dir, out)
	}
	stack, cleanup, err := startForCompare(ctx, &cfg)
	if err != nil {
		return Report{}, err
	}
	defer cleanup()
	target, err := setup(stack, cfg)
	if err != nil {
		return Report{}, fmt.Errorf("load: set up iam: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, err
	}
	bare := &http.Server{Handler: BareCheckHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = bare.Serve(ln) }()
	defer bare.Close()
	bareTarget := target
	bareTarget.Name, bareTarget.URL = "bare", "http://"+ln.Addr().String()+"/v1/check"
	return abba(ctx, cfg, bareTarget, target, out)
}

// dataDir defaults cfg's logger and gives iam's data directory: cfg.Dir,
// or a temporary one that cleanup removes.
func dataDir(cfg *Config) (dir string, cleanup func(), err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Dir != "" {
		return cfg.Dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "iamload-")
	if err != nil {
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// startForCompare starts the one iam stack a comparison drives; cleanup
// closes it and removes a temporary data directory.
func startForCompare(ctx context.Context, cfg *Config) (*Stack, func(), error) {
	dir, removeDir, err := dataDir(cfg)
	if err != nil {
		return nil, nil, err
	}
	stack, err := StartStack(ctx, StackConfig{Dir: dir, SyncAlways: cfg.Fsync, Logger: cfg.Logger})
	cleanup := func() { stack.Close(); removeDir() }
	if err != nil {
		cleanup() // a stack is closed also after an error
		return nil, nil, err
	}
	return stack, cleanup, nil
}

// compareTLS sets up two stacks alike, one serving plaintext HTTP and one
// HTTPS, and drives both.
func compareTLS(ctx context.Context, cfg Config, dir string, out io.Writer) (Report, error) {
	var targets [2]Target
	for i, name := range []string{"http", "https"} {
		stack, err := StartStack(ctx, StackConfig{Dir: filepath.Join(dir, name), SyncAlways: cfg.Fsync, TLS: name == "https", Logger: cfg.Logger})
		if err != nil {
			stack.Close()
			return Report{}, err
		}
		defer stack.Close()
		if targets[i], err = setup(stack, cfg); err != nil {
			return Report{}, fmt.Errorf("load: set up iam (%s): %w", name, err)
		}
		targets[i].Name, targets[i].TLS = name, stack.ClientTLS
	}
	return abba(ctx, cfg, targets[0], targets[1], out)
}

// abba drives base and measured, each for half of cfg.Duration twice, in
// the order base, measured, measured, base, so that neither side gains
// from going second (warm caches, a grown heap).
func abba(ctx context.Context, cfg Config, base, measured Target, out io.Writer) (Report, error) {
	opts := Options{Conns: cfg.Conns, Duration: cfg.Duration / 2, Warmup: cfg.Warmup}
	fmt.Fprintf(out, "driving %s (%s) and %s (%s): %d connections, %s per side in ABBA halves (each after %s warmup), mode %s, auth %s, %d bodies\n",
		base.URL, base.Name, measured.URL, measured.Name, cfg.Conns, cfg.Duration, cfg.Warmup, cfg.Mode, cfg.Auth, len(measured.Bodies))
	var rep Report
	for i, t := range []Target{base, measured, measured, base} {
		r, err := Run(ctx, t, opts)
		if err != nil {
			return rep, err
		}
		fmt.Fprintln(out, "  ", r)
		if i == 0 || i == 3 {
			rep.Base = rep.Base.Merge(r)
		} else {
			rep.Measured = rep.Measured.Merge(r)
		}
	}
	fmt.Fprintln(out, rep.Base)
	fmt.Fprintln(out, rep.Measured)
	for _, r := range []Result{rep.Base, rep.Measured} {
		if r.Failures > 0 {
			fmt.Fprintf(out, "%s: %d failures, the first: %s\n", r.Name, r.Failures, r.FirstFailure)
		}
	}
	return rep, nil
}

// setup makes a checking app with the right to check users, users with
// allowing and denying policies, and the check bodies.
func setup(s *Stack, cfg Config) (Target, error) {
	admin, err := token(s.Client, s.URL, s.Admin.ClientID, s.Admin.ClientSecret)
	if err != nil {
		return Target{}, err
	}
	realm := s.Admin.Realm
	data := func(res string) string { return "hrn:here:data::" + realm + ":" + res }
	var last string
	do := func(method, path string, body any) (map[string]any, error) {
		v, err := call(s.Client, method, s.URL+path, admin, body)
		if t, _ := v["consistencyToken"].(string); t != "" {
			last = t
		}
		return v, err
	}
	id := func(v map[string]any, err error) (string, error) {
		if err != nil {
			return "", err
		}
		s, _ := v["id"].(string)
		return s, nil
	}
	pep, err := id(do("POST", "/v1/apps", map[string]any{"name": "policy enforcement point"}))
	if err != nil {
		return Target{}, err
	}
	mayCheck, err := id(do("POST", "/v1/policies", map[string]any{"name": "may check users", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{"checkAccess"}, "resources": []string{"hrn:here:account::" + realm + ":user/*"}}}}))
	if err != nil {
		return Target{}, err
	}
	readers, err := id(do("POST", "/v1/policies", map[string]any{"name": "catalog readers", "statements": []any{
		map[string]any{"effect": "allow", "actions": []string{"read", "list"}, "resources": []string{data("catalog/*")}},
		map[string]any{"effect": "deny", "actions": []string{"*"}, "resources": []string{data("catalog/secret/*")}}}}))
	if err != nil {
		return Target{}, err
	}
	group, err := id(do("POST", "/v1/groups", map[string]any{"name": "readers"}))
	if err != nil {
		return Target{}, err
	}
	for _, p := range [][2]string{{mayCheck, pep}, {readers, group}} {
		if _, err := do("PUT", "/v1/policies/"+p[0]+"/attachments/"+p[1], nil); err != nil {
			return Target{}, err
		}
	}
	var users []string
	for i := range cfg.Users {
		u, err := id(do("POST", "/v1/users", map[string]any{"email": fmt.Sprintf("load%d@example.com", i), "name": fmt.Sprint("load user ", i)}))
		if err != nil {
			return Target{}, err
		}
		users = append(users, u)
		if i%4 != 3 { // one user in four is in no group: denied
			if _, err := do("PUT", "/v1/groups/"+group+"/members/"+u, nil); err != nil {
				return Target{}, err
			}
		}
	}
	header := http.Header{"Content-Type": {"application/json"}}
	switch cfg.Auth {
	case "bearer":
		cred, err := do("POST", "/v1/apps/"+pep+"/credentials", nil)
		if err != nil {
			return Target{}, err
		}
		cid, _ := cred["clientId"].(string)
		secret, _ := cred["clientSecret"].(string)
		tok, err := token(s.Client, s.URL, cid, secret)
		if err != nil {
			return Target{}, err
		}
		header.Set("Authorization", "Bearer "+tok)
	case "apikey":
		key, err := do("POST", "/v1/apps/"+pep+"/apiKeys", nil)
		if err != nil {
			return Target{}, err
		}
		k, _ := key["apiKey"].(string)
		header.Set("X-API-Key", k)
	}
	t := Target{Name: "iam", URL: s.URL + "/v1/check", Header: header}
	for i := range cfg.Resources {
		res := data(fmt.Sprintf("catalog/item-%d", i))
		if i%8 == 7 {
			res = data(fmt.Sprintf("catalog/secret/%d", i))
		}
		c := map[string]any{"mode": cfg.Mode}
		if cfg.Mode == "at_least_as_fresh" {
			c["token"] = last
		}
		body, _ := json.Marshal(map[string]any{"subject": users[i%len(users)], "action": "read", "resource": res, "consistency": c})
		t.Bodies = append(t.Bodies, body)
	}
	// Every region has applied the setup before the clock starts, and
	// the checking app's answers are what they should be.
	allowed := 0
	for _, b := range t.Bodies {
		var q map[string]any
		_ = json.Unmarshal(b, &q)
		q["consistency"] = map[string]any{"mode": "at_least_as_fresh", "token": last, "waitMs": 10000}
		req, _ := http.NewRequest("POST", t.URL, bytes.NewReader(mustJSON(q)))
		req.Header = header.Clone()
		v, err := send(s.Client, req)
		if err != nil {
			return Target{}, err
		}
		if v["allowed"] == true {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(t.Bodies) {
		return Target{}, fmt.Errorf("%d of %d checks allowed: want a mix", allowed, len(t.Bodies))
	}
	return t, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// token gets a client-credentials access token.
func token(c *http.Client, base, id, secret string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	v, err := send(c, req)
	if err != nil {
		return "", err
	}
	tok, _ := v["access_token"].(string)
	if tok == "" {
		return "", fmt.Errorf("token: no access_token in %v", v)
	}
	return tok, nil
}

// call sends a JSON request with a bearer token.
func call(c *http.Client, method, target, tok string, body any) (map[string]any, error) {
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(mustJSON(body))
	}
	req, err := http.NewRequest(method, target, rdr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(c, req)
}

func send(c *http.Client, req *http.Request) (map[string]any, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	if resp.StatusCode >= 300 {
		return v, fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	return v, nil
}
