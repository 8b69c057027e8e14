package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iam-project/iam/api/client"
)

// errUsage marks a command line that cannot be run.
var errUsage = errors.New("usage: iamctl lag|check|who-can|history|simulate|token [flags]; iamctl COMMAND -h for its flags")

// Main runs one iamctl command. Tests set its fields and call Run.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Now            func() time.Time
	// ClientOptions are added to every client made (tests).
	ClientOptions []client.Option
}

// NewMain returns a Main on the process's stdio and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now}
}

// Run runs the command in args.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "lag":
		return m.lag(ctx, args[1:])
	case "check":
		return m.check(ctx, args[1:])
	case "who-can":
		return m.whoCan(ctx, args[1:])
	case "history":
		return m.history(ctx, args[1:])
	case "simulate":
		return m.simulate(ctx, args[1:])
	case "token":
		return m.token(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(m.Stdout, errUsage.Error())
		return nil
	}
	return fmt.Errorf("%w (unknown command %q)", errUsage, args[0])
}

// conn is the flags every command takes: where iam is and who is calling.
type conn struct {
	urls                   []string
	token                  string
	clientID, clientSecret string
	tokenURL               string
	bootstrap              string
}

type urlList struct{ c *conn }

func (u urlList) String() string {
	if u.c == nil {
		return "" // flag.PrintDefaults calls it on a zero value
	}
	return strings.Join(u.c.urls, ",")
}
func (u urlList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			u.c.urls = append(u.c.urls, s)
		}
	}
	return nil
}

func (m *Main) flags(name string, c *conn) *flag.FlagSet {
	fs := flag.NewFlagSet("iamctl "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Var(urlList{c}, "url", "iam endpoint, nearest region first; repeat or comma-separate for failover (default $IAM_URL or http://127.0.0.1:8080)")
	fs.StringVar(&c.token, "token", "", "bearer access token (default $IAM_TOKEN)")
	fs.StringVar(&c.clientID, "client-id", "", "client id for client credentials (default $IAM_CLIENT_ID)")
	fs.StringVar(&c.clientSecret, "client-secret", "", "client secret (default $IAM_CLIENT_SECRET)")
	fs.StringVar(&c.tokenURL, "token-url", "", "token endpoint (default: the first --url + /oauth2/token)")
	fs.StringVar(&c.bootstrap, "bootstrap", "", "read client credentials from a bootstrap-admin.json")
	return fs
}

// client makes the API client the flags describe.
func (m *Main) client(ctx context.Context, c *conn) (*client.Client, error) {
	env := m.Getenv
	if len(c.urls) == 0 {
		_ = urlList{c}.Set(env("IAM_URL"))
	}
	if len(c.urls) == 0 {
		c.urls = []string{"http://127.0.0.1:8080"}
	}
	if c.bootstrap != "" {
		data, err := os.ReadFile(c.bootstrap)
		if err != nil {
			return nil, err
		}
		var b struct {
			ClientID     string `json:"clientId"`
			ClientSecret string `json:"clientSecret"`
			TokenURL     string `json:"tokenUrl"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("%s: %w", c.bootstrap, err)
		}
		c.clientID, c.clientSecret = b.ClientID, b.ClientSecret
		if c.tokenURL == "" {
			c.tokenURL = b.TokenURL
		}
	}
	c.token = or(c.token, env("IAM_TOKEN"))
	c.clientID = or(c.clientID, env("IAM_CLIENT_ID"))
	c.clientSecret = or(c.clientSecret, env("IAM_CLIENT_SECRET"))
	opts := []client.Option{client.WithUserAgent("iamctl")}
	switch {
	case c.token != "":
		opts = append(opts, client.WithToken(c.token))
	case c.clientID != "" && c.clientSecret != "":
		if c.tokenURL == "" {
			c.tokenURL = strings.TrimSuffix(strings.SplitN(c.urls[0], "?", 2)[0], "/") + "/oauth2/token"
		}
		opts = append(opts, client.WithTokenSource(client.ClientCredentials(ctx, c.tokenURL, c.clientID, c.clientSecret, "", nil)))
	default:
		return nil, fmt.Errorf("%w: no credentials (--token, --client-id/--client-secret or --bootstrap)", errUsage)
	}
	return client.New(c.urls, append(opts, m.ClientOptions...)...)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lag prints every region's lag as a table; --watch reprints it every
// interval until interrupted.
func (m *Main) lag(ctx context.Context, args []string) error {
	var c conn
	fs := m.flags("lag", &c)
	watch := fs.Bool("watch", false, "refresh the table until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "refresh interval with --watch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval < 100*time.Millisecond {
		return fmt.Errorf("%w: --interval must be at least 100ms", errUsage)
	}
	cl, err := m.client(ctx, &c)
	if err != nil {
		return err
	}
	if !*watch {
		sts, err := cl.Replicas(ctx)
		if err != nil {
			return err
		}
		return writeLagTable(m.Stdout, sts)
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, max(*interval, 5*time.Second))
		sts, err := cl.Replicas(actx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Clear the screen and home the cursor, as watch(1) does.
		fmt.Fprintf(m.Stdout, "\x1b[H\x1b[2J")
		fmt.Fprintf(m.Stdout, "Every %s: iamctl lag    %s\n\n", *interval, m.Now().Format(time.TimeOnly))
		if err != nil {
			fmt.Fprintf(m.Stdout, "error: %v\n", err)
		} else if err := writeLagTable(m.Stdout, sts); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// writeLagTable writes one row per region.
func writeLagTable(w io.Writer, sts []client.ReplicaStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tAPPLIED\tHEAD\tLAG EVENTS\tLAG SECONDS\tSTATE")
	for _, s := range sts {
		state := "ready"
		if !s.Healthy {
			state = "NOT READY"
		}
		if s.Error != "" {
			state += ": " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%s\n", s.Region, s.AppliedToken, s.HeadToken, s.LagEvents, s.LagSeconds, state)
	}
	return tw.Flush()
}

// check asks one authorization question and prints the answer as JSON.
func (m *Main) check(ctx context.Context, args []string) error {
	var c conn
	var q client.CheckRequest
	fs := m.flags("check", &c)
	fs.StringVar(&q.Subject, "subject", "", "identity id (default: the caller)")
	fs.StringVar(&q.Action, "action", "", "action, e.g. read")
	fs.StringVar(&q.Resource, "resource", "", "resource HRN")
	fs.StringVar(&q.Scope, "scope", "", "project HRN, for a project-scoped check")
	fs.StringVar(&q.Consistency.Mode, "mode", "", "minimize_latency, at_least_as_fresh or fully_consistent")
	fs.StringVar(&q.Consistency.Token, "ct", "", "consistency token the answer must be at least as fresh as")
	fs.DurationVar(&q.Consistency.Wait, "wait", 0, "how long a region may wait for its replica (default: the server's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if q.Action == "" || q.Resource == "" {
		return fmt.Errorf("%w: check needs --action and --resource", errUsage)
	}
	cl, err := m.client(ctx, &c)
	if err != nil {
		return err
	}
	res, err := cl.Check(ctx, q)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"allowed": res.Allowed, "reason": res.Reason, "region": res.Region,
		"consistencyToken": res.ConsistencyToken, "endpoint": res.Endpoint})
}

// whoCan prints every identity that may do an action on a resource, one per
// line with the reason its check gives, following the pages to the end.
func (m *Main) whoCan(ctx context.Context, args []string) error {
	var c conn
	var q client.LookupRequest
	fs := m.flags("who-can", &c)
	fs.StringVar(&q.Action, "action", "", "action, e.g. read")
	fs.StringVar(&q.Resource, "resource", "", "resource HRN")
	fs.StringVar(&q.Scope, "scope", "", "project HRN, for a resource in a project")
	fs.StringVar(&q.Consistency.Mode, "mode", "", "minimize_latency, at_least_as_fresh or fully_consistent")
	fs.StringVar(&q.Consistency.Token, "ct", "", "consistency token the answer must be at least as fresh as")
	fs.IntVar(&q.PageSize, "page-size", 0, "subjects per request (default: the server's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if q.Action == "" || q.Resource == "" {
		return fmt.Errorf("%w: who-can needs --action and --resource", errUsage)
	}
	cl, err := m.client(ctx, &c)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tKIND\tREASON")
	for {
		page, err := cl.LookupSubjects(ctx, q)
		if err != nil {
			return err
		}
		for _, s := range page.Subjects {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.Kind, s.Reason)
		}
		if page.NextPageToken == "" {
			return tw.Flush()
		}
		q.PageToken = page.NextPageToken
	}
}

// history prints, as JSON, each change of an identity's effective
// permissions between two tokens, with the event that caused it.
func (m *Main) history(ctx context.Context, args []string) error {
	var c conn
	fs := m.flags("history", &c)
	identity := fs.String("identity", "", "identity id")
	from := fs.String("from", "", "changes after this consistency token (default: from the first)")
	to := fs.String("to", "", "changes up to this consistency token (default: the log's head)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *identity == "" {
		return fmt.Errorf("%w: history needs --identity", errUsage)
	}
	cl, err := m.client(ctx, &c)
	if err != nil {
		return err
	}
	changes, err := cl.AccessChanges(ctx, *identity, *from, *to)
	if err != nil {
		return err
	}
	return m.printJSON(map[string]any{"identityId": *identity, "changes": changes})
}

// simulate sends a dry run read as JSON from --file (or stdin: "-"),
// {changes: [{method, path, body}], checks: [...]}, and prints its answer.
func (m *Main) simulate(ctx context.Context, args []string) error {
	var c conn
	fs := m.flags("simulate", &c)
	file := fs.String("file", "-", "JSON file of the changes and checks (\"-\": stdin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in := m.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var q client.SimulateRequest
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return fmt.Errorf("%w: simulate reads {changes, checks} as JSON: %v", errUsage, err)
	}
	cl, err := m.client(ctx, &c)
	if err != nil {
		return err
	}
	res, err := cl.Simulate(ctx, q)
	if err != nil {
		return err
	}
	return m.printJSON(res)
}

func (m *Main) printJSON(v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// token prints an access token for the credentials given.
func (m *Main) token(ctx context.Context, args []string) error {
	var c conn
	fs := m.flags("token", &c)
	scope := fs.String("scope", "", "project HRN, for a project-scoped token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := m.client(ctx, &c); err != nil {
		return err
	}
	if c.token != "" {
		fmt.Fprintln(m.Stdout, c.token)
		return nil
	}
	tok, err := client.ClientCredentials(ctx, c.tokenURL, c.clientID, c.clientSecret, *scope, nil).Token()
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, tok.AccessToken)
	return nil
}
