package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/iam-project/iam/api/client"
)

// errUsage marks a command line that cannot be run.
var errUsage = errors.New("usage error (iamctl --help lists the commands, iamctl COMMAND --help their flags)")

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

// runError carries an error of a command's own run, as opposed to one of
// parsing its command line (which Run reports as a usage error).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// Run runs the command in args. A command line that cannot be run is an
// errUsage; an answer of the API is explained (see explain).
func (m *Main) Run(ctx context.Context, args []string) error {
	root := m.rootCommand()
	root.SetArgs(args)
	if len(args) == 0 {
		_ = root.Usage() // to stderr
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	var re runError
	if errors.As(err, &re) {
		// The noun the command is under ("groups") names the list that
		// shows the ids it takes.
		for cmd.HasParent() && cmd.Parent().HasParent() {
			cmd = cmd.Parent()
		}
		return explain(re.err, cmd.Name())
	}
	if errors.Is(err, errUsage) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

// session is one command's state: the flags every command takes (where iam
// is, who is calling, how to print) and the client they make.
type session struct {
	m                      *Main
	urls                   []string
	token                  string
	clientID, clientSecret string
	tokenURL               string
	bootstrap              string
	output                 string
}

func (m *Main) rootCommand() *cobra.Command {
	s := &session{m: m}
	root := &cobra.Command{
		Use:   "iamctl",
		Short: "The command line for iam: management, checks, the change feed, lag, export and import",
		Long: `iamctl manages an iam realm and asks it questions.

Every command takes --url (repeatable or comma-separated, nearest region first;
$IAM_URL) and credentials: --token ($IAM_TOKEN), or --client-id and
--client-secret ($IAM_CLIENT_ID, $IAM_CLIENT_SECRET), or --bootstrap
DATA/bootstrap-admin.json. -o json prints what scripts read; the default is a
table for people. "iamctl completion bash|zsh|fish" prints shell completion.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if s.output != "table" && s.output != "json" {
				return fmt.Errorf("%w: -o must be table or json, not %q", errUsage, s.output)
			}
			return nil
		},
	}
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.SetHelpCommandGroupID("ask")
	root.SetCompletionCommandGroupID("ask")
	root.SetIn(m.Stdin)
	pf := root.PersistentFlags()
	pf.StringSliceVar(&s.urls, "url", nil, "iam endpoint, nearest region first; repeat or comma-separate for failover (default $IAM_URL or http://127.0.0.1:8080)")
	pf.StringVar(&s.token, "token", "", "bearer access token (default $IAM_TOKEN)")
	pf.StringVar(&s.clientID, "client-id", "", "client id for client credentials (default $IAM_CLIENT_ID)")
	pf.StringVar(&s.clientSecret, "client-secret", "", "client secret (default $IAM_CLIENT_SECRET)")
	pf.StringVar(&s.tokenURL, "token-url", "", "token endpoint (default: the first --url + /oauth2/token)")
	pf.StringVar(&s.bootstrap, "bootstrap", "", "read client credentials from a bootstrap-admin.json")
	pf.StringVarP(&s.output, "output", "o", "table", "output format: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.AddGroup(&cobra.Group{ID: "manage", Title: "Management:"}, &cobra.Group{ID: "ask", Title: "Questions, history and operations:"})
	for _, c := range s.manageCommands() {
		c.GroupID = "manage"
		root.AddCommand(c)
	}
	for _, c := range s.askCommands() {
		c.GroupID = "ask"
		root.AddCommand(c)
	}
	return root
}

// run adapts a command's body to cobra: its errors are the run's, not the
// command line's.
func run(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd.Context(), args); err != nil {
			if errors.Is(err, errUsage) {
				return err
			}
			return runError{err}
		}
		return nil
	}
}

// client makes the API client the flags describe.
func (s *session) client(ctx context.Context) (*client.Client, error) {
	env := s.m.Getenv
	if len(s.urls) == 0 {
		for _, u := range strings.Split(env("IAM_URL"), ",") {
			if u = strings.TrimSpace(u); u != "" {
				s.urls = append(s.urls, u)
			}
		}
	}
	if len(s.urls) == 0 {
		s.urls = []string{"http://127.0.0.1:8080"}
	}
	if s.bootstrap != "" {
		data, err := os.ReadFile(s.bootstrap)
		if err != nil {
			return nil, err
		}
		var b struct {
			ClientID     string `json:"clientId"`
			ClientSecret string `json:"clientSecret"`
			TokenURL     string `json:"tokenUrl"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("%s: %w", s.bootstrap, err)
		}
		s.clientID, s.clientSecret = b.ClientID, b.ClientSecret
		if s.tokenURL == "" {
			s.tokenURL = b.TokenURL
		}
	}
	s.token = or(s.token, env("IAM_TOKEN"))
	s.clientID = or(s.clientID, env("IAM_CLIENT_ID"))
	s.clientSecret = or(s.clientSecret, env("IAM_CLIENT_SECRET"))
	opts := []client.Option{client.WithUserAgent("iamctl")}
	switch {
	case s.token != "":
		opts = append(opts, client.WithToken(s.token))
	case s.clientID != "" && s.clientSecret != "":
		if s.tokenURL == "" {
			s.tokenURL = strings.TrimSuffix(strings.SplitN(s.urls[0], "?", 2)[0], "/") + "/oauth2/token"
		}
		opts = append(opts, client.WithTokenSource(client.ClientCredentials(ctx, s.tokenURL, s.clientID, s.clientSecret, "", nil)))
	default:
		return nil, fmt.Errorf("%w: no credentials: pass --token (or set IAM_TOKEN), --client-id and --client-secret, or --bootstrap DATA/bootstrap-admin.json", errUsage)
	}
	return client.New(s.urls, append(opts, s.m.ClientOptions...)...)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// print writes v as JSON with -o json, else the table that table writes.
func (s *session) print(v any, table func(w io.Writer)) error {
	if s.output == "json" {
		enc := json.NewEncoder(s.m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(s.m.Stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	fmt.Fprintln(w)
}

// printWrite prints a write's answer: what it did and its consistency token.
func (s *session) printWrite(what string, r client.WriteResult) error {
	return s.print(r, func(w io.Writer) {
		row(w, "RESULT", "CONSISTENCY TOKEN")
		row(w, what, r.ConsistencyToken)
	})
}

// explain turns an error of a command under noun into one that says what
// to do about it.
func explain(err error, noun string) error {
	var apiErr *client.Error
	var netErr *net.OpError
	var tokenErr *oauth2.RetrieveError
	switch {
	case errors.As(err, &apiErr):
		detail := apiErr.Detail
		if apiErr.Field != "" && !strings.Contains(detail, apiErr.Field) {
			detail = apiErr.Field + ": " + detail
		}
		var hint string
		switch apiErr.Code {
		case client.CodeUnauthenticated:
			hint = "the credentials were refused or the token expired or was revoked: run `iamctl token` with --client-id/--client-secret (or --bootstrap) and set IAM_TOKEN to what it prints, or pass those flags to this command"
		case client.CodePermissionDenied:
			hint = "the caller lacks the right named above: ask an OrgAdmin to grant it (`iamctl roles grant IDENTITY ROLE` or `iamctl policies attach POLICY IDENTITY`)"
		case client.CodeNotFound:
			hint = "no such id in this realm: list the ids with `iamctl users|apps|groups|policies|projects list`"
			if slices.Contains([]string{"users", "apps", "groups", "policies", "projects"}, noun) {
				hint = "no such id in this realm: `iamctl " + noun + " list` shows the ids (an id named as a member or target is listed under its own kind)"
			}
		case client.CodeInvalidArgument:
			hint = "fix the field named above and retry"
		case client.CodeRateLimited, client.CodeReplicaBehind, client.CodeUnavailable:
			hint = "retry later"
			if apiErr.RetryAfter > 0 {
				hint += fmt.Sprintf(" (the server asks for %s)", apiErr.RetryAfter)
			}
		case client.CodeConflict:
			hint = "the realm's state does not allow it now: read the current state (`iamctl ... get`) and retry"
		}
		// Keep the context the command wrapped the answer in ("user ann: ").
		msg := strings.TrimSuffix(err.Error(), apiErr.Error())
		msg += fmt.Sprintf("%d %s: %s", apiErr.Status, apiErr.Code, detail)
		if apiErr.CorrelationID != "" {
			msg += " (correlation id " + apiErr.CorrelationID + ")"
		}
		if hint != "" {
			msg += "\n  " + hint
		}
		return &explained{msg: msg, err: err}
	case errors.As(err, &tokenErr):
		return &explained{msg: err.Error() + "\n  check --client-id/--client-secret (or --bootstrap) and --token-url", err: err}
	case errors.As(err, &netErr):
		return &explained{msg: err.Error() + "\n  is iamd running there? set --url or IAM_URL to its address", err: err}
	}
	return err
}

// explained is an error with advice; errors.Is and errors.As see the
// original.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }
