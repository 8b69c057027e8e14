package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// TestOutput runs the same commands as tables and as -o json against a
// real iamd: a table has its header and a row per item; JSON decodes into
// the client's types with the same items.
func TestOutput(t *testing.T) {
	m := daemontest.Start(t, "")
	ann := str(ctlJSON(t, m, "users", "create", "--email", "ann@example.com", "--name", "Ann"), "id")
	g := str(ctlJSON(t, m, "groups", "create", "--name", "readers"), "id")
	ctl(t, m, "groups", "add-member", g, ann)
	resource := "hrn:here:data::" + m.Bootstrap.Realm + ":catalog-1"
	pol := str(ctlJSON(t, m, "policies", "create", "--name", "read", "--allow", "read="+resource), "id")
	ctl(t, m, "policies", "attach", pol, g)

	for _, tc := range []struct {
		args   []string
		header []string
		row    []string // cells of the row naming the first of them
		json   func(t *testing.T, out []byte)
	}{
		{[]string{"users", "list"}, []string{"ID", "KIND", "STATUS", "NAME", "EMAIL"}, []string{ann, "user", "active", "Ann", "ann@example.com"},
			func(t *testing.T, out []byte) {
				var v struct{ Items []client.Identity }
				if err := json.Unmarshal(out, &v); err != nil || len(v.Items) != 1 || v.Items[0].Email != "ann@example.com" || v.Items[0].Groups[0] != g {
					t.Fatalf("got %s (%v), want ann in %s", out, err, g)
				}
			}},
		{[]string{"groups", "get", g}, []string{"ID", "NAME", "MEMBERS", "POLICIES"}, []string{g, "readers", ann, pol},
			func(t *testing.T, out []byte) {
				var v struct{ Items []client.GroupInfo }
				if err := json.Unmarshal(out, &v); err != nil || len(v.Items) != 1 || v.Items[0].Members[0] != ann {
					t.Fatalf("got %s (%v), want readers with ann", out, err)
				}
			}},
		{[]string{"check", "--subject", ann, "--action", "read", "--resource", resource, "--mode", "fully_consistent"},
			[]string{"DECISION", "REASON", "REGION", "CONSISTENCY TOKEN"}, []string{"ALLOWED", "allowed by policy " + pol},
			func(t *testing.T, out []byte) {
				var v client.CheckResponse
				if err := json.Unmarshal(out, &v); err != nil || !v.Allowed || !strings.Contains(v.Reason, pol) || v.ConsistencyToken == "" {
					t.Fatalf("got %s (%v), want allowed by %s at a token", out, err, pol)
				}
			}},
		{[]string{"permissions", ann}, []string{"EFFECT", "ACTION", "RESOURCE", "SOURCE"}, []string{"allow", "read", resource, "policy " + pol + " via group " + g},
			func(t *testing.T, out []byte) {
				var v struct{ Permissions []struct{ Resource string } }
				if err := json.Unmarshal(out, &v); err != nil || len(v.Permissions) != 1 || v.Permissions[0].Resource != resource {
					t.Fatalf("got %s (%v), want read on %s", out, err, resource)
				}
			}},
		{[]string{"managers", "list", "groups", g}, []string{"MANAGER", "KIND"}, []string{"app"},
			func(t *testing.T, out []byte) {
				var v struct{ Items []client.Ref }
				if err := json.Unmarshal(out, &v); err != nil || len(v.Items) != 1 || v.Items[0].Kind != "app" {
					t.Fatalf("got %s (%v), want the creating app", out, err)
				}
			}},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			out := string(ctl(t, m, tc.args...))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, h := range tc.header {
				if !strings.Contains(lines[0], h) {
					t.Fatalf("table header %q: want %q in it\n%s", lines[0], h, out)
				}
			}
			line := lineWith(strings.Join(lines[1:], "\n"), tc.row[0])
			for _, c := range tc.row {
				if !strings.Contains(line, c) {
					t.Fatalf("table row %q: want %q in it\n%s", line, c, out)
				}
			}
			tc.json(t, ctl(t, m, append(tc.args, "-o", "json")...))
		})
	}
}

// TestErrors checks that each refusal says what to do about it: 401 how to
// get a token, 403 which right is missing, 404 which id, 400 which field;
// and that a command line that cannot run is a usage error.
func TestErrors(t *testing.T) {
	m := daemontest.Start(t, "")
	admin := daemontest.AdminClient(t, m)
	// An app with no rights, signing in with its own credentials.
	weak := admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "weak"}).Str("id")
	cred := admin.Must(http.StatusCreated, "POST", "/v1/apps/"+weak+"/credentials", nil)
	weakToken := daemontest.ClientToken(t, daemontest.URL(m), cred.Str("clientId"), cred.Str("clientSecret"), "")
	// A token revoked with its app: deactivated.
	gone := admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "gone"}).Str("id")
	goneCred := admin.Must(http.StatusCreated, "POST", "/v1/apps/"+gone+"/credentials", nil)
	goneToken := daemontest.ClientToken(t, daemontest.URL(m), goneCred.Str("clientId"), goneCred.Str("clientSecret"), "")
	admin.Must(http.StatusOK, "PATCH", "/v1/apps/"+gone, map[string]any{"status": "deactivated"})
	// Authentication reads the region's replica, which learns of the
	// deactivation a moment after the write is acknowledged; until then the
	// token authenticates and the authorization refuses it (403).
	eventlogtest.Eventually(t, 10*time.Second, "the region refuses the deactivated app's token", func() bool {
		return admin.With(goneToken).Do("GET", "/v1/users", nil).Status == http.StatusUnauthorized
	})

	as := func(token string, args ...string) error {
		main, _ := testMain(nil)
		main.ClientOptions = []client.Option{client.WithMaxElapsedTime(2 * time.Second)}
		return main.Run(context.Background(), append(args, "--url", daemontest.URL(m), "--token", token))
	}
	for _, tc := range []struct {
		name string
		err  error
		code string
		want []string
	}{
		{"no token", as("not-a-token", "users", "list"), client.CodeUnauthenticated, []string{"401", "iamctl token", "IAM_TOKEN"}},
		{"revoked token", as(goneToken, "users", "list"), client.CodeUnauthenticated, []string{"401", "iamctl token"}},
		{"no right", as(weakToken, "users", "create", "--email", "x@example.com", "--name", "X"), client.CodePermissionDenied, []string{"403", "createUser", "ask an OrgAdmin"}},
		{"someone else's app", as(weakToken, "credentials", "add", gone), client.CodePermissionDenied, []string{"403", "manageApp"}},
		{"unknown id", as(admin.Token, "groups", "get", "g-nosuch"), client.CodeNotFound, []string{"404", "g-nosuch", "iamctl groups list"}},
		{"bad field", as(admin.Token, "users", "create", "--email", "not an email", "--name", "X"), client.CodeInvalidArgument, []string{"400", "email"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.err)
			if client.Code(tc.err) != tc.code {
				t.Fatalf("got %v, want code %s", tc.err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.err.Error(), w) {
					t.Errorf("got %q, want it to say %q", tc.err, w)
				}
			}
		})
	}
	t.Run("wrong client secret", func(t *testing.T) {
		main, _ := testMain(nil)
		main.ClientOptions = []client.Option{client.WithMaxElapsedTime(2 * time.Second)}
		err := main.Run(context.Background(), []string{"users", "list", "--url", daemontest.URL(m),
			"--client-id", m.Bootstrap.ClientID, "--client-secret", "wrong"})
		if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "check --client-id/--client-secret") {
			t.Fatalf("got %v, want the token endpoint's refusal and which flags to check", err)
		}
	})
	for _, args := range [][]string{
		{"users", "get"},                                         // no id
		{"users", "set-status", "u-1", "gone"},                   // no such status
		{"managers", "list", "users", "u-1"},                     // users have no managers
		{"policies", "create", "--name", "p"},                    // no statements
		{"policies", "create", "--name", "p", "--allow", "read"}, // no resources
		{"users", "list", "-o", "yaml"},
	} {
		if err := as(admin.Token, args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}

// TestCompletion prints each shell's completion script, and completes a
// command's fixed arguments.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_iamctl", "zsh": "#compdef iamctl", "fish": "complete -c iamctl"} {
		main, out := testMain(nil)
		if err := main.Run(context.Background(), []string{"completion", shell}); err != nil || !strings.Contains(out.String(), want) {
			t.Errorf("completion %s: got %v and %d bytes without %q", shell, err, out.Len(), want)
		}
	}
	main, out := testMain(nil)
	if err := main.Run(context.Background(), []string{"__complete", "managers", "list", ""}); err != nil {
		t.Fatal(err)
	}
	for _, k := range managedKinds {
		if !strings.Contains(out.String(), k) {
			t.Errorf("completing managers list: got %q, want %s offered", out, k)
		}
	}
}

// TestWatchCommand follows a real iamd's feed with `iamctl watch`: a
// group created before it starts shows up, as a line and as JSON (the
// client's tests show resuming with Last-Event-ID).
func TestWatchCommand(t *testing.T) {
	m := daemontest.Start(t, "")
	g := str(ctlJSON(t, m, "groups", "create", "--name", "watched"), "id")
	for _, output := range []string{"table", "json"} {
		t.Run(output, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var buf bytes.Buffer
			main, _ := testMain(nil)
			main.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
			done := make(chan error, 1)
			go func() {
				done <- main.Run(ctx, []string{"watch", "-o", output, "--url", daemontest.URL(m), "--client-id", m.Bootstrap.ClientID,
					"--client-secret", m.Bootstrap.ClientSecret})
			}()
			seen := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
			eventlogtest.Eventually(t, 10*time.Second, "the group's creation in the feed", func() bool {
				return strings.Contains(seen(), "GroupCreated") && strings.Contains(seen(), g)
			})
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled after the interrupt", err)
			}
			if output == "json" {
				first, _, _ := strings.Cut(seen(), "\n")
				var e client.FeedEvent
				if err := json.Unmarshal([]byte(first), &e); err != nil || e.Change == nil || e.Change.Token == "" {
					t.Fatalf("got %q (%v), want one change as JSON a line", first, err)
				}
			}
		})
	}
}

// TestCompletion_IDs completes a verb's id from a real iamd's list, each
// described by its name.
func TestCompletion_IDs(t *testing.T) {
	m := daemontest.Start(t, "")
	g := str(ctlJSON(t, m, "groups", "create", "--name", "readers"), "id")
	u := str(ctlJSON(t, m, "users", "create", "--email", "ann@example.com", "--name", "Ann"), "id")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "groups", "add-member", ""}, g + "\treaders"},
		{[]string{"__complete", "users", "set-status", ""}, u + "\tann@example.com"},
		{[]string{"__complete", "users", "set-status", u, ""}, "deactivated"},
	} {
		// The word being completed comes last, after the credentials.
		n := len(tc.args) - 1
		main, buf := testMain(nil)
		if err := main.Run(context.Background(), append(append(tc.args[:n:n], "--url", daemontest.URL(m), "--client-id", m.Bootstrap.ClientID,
			"--client-secret", m.Bootstrap.ClientSecret), tc.args[n])); err != nil {
			t.Fatal(err)
		}
		if out := buf.String(); !strings.Contains(out, tc.want) {
			t.Errorf("%q: got %q, want %q offered", tc.args, out, tc.want)
		}
	}
}

// TestUsersCreate_PasswordStdin creates a user whose password comes on
// stdin (never a flag, which the shell's history keeps); an empty stdin is
// a usage error.
func TestUsersCreate_PasswordStdin(t *testing.T) {
	m := daemontest.Start(t, "")
	main, out := testMain(nil)
	main.Stdin = strings.NewReader("correct horse battery staple\n")
	err := main.Run(context.Background(), []string{"users", "create", "--email", "ann@example.com", "--name", "Ann", "--password-stdin",
		"-o", "json", "--url", daemontest.URL(m), "--client-id", m.Bootstrap.ClientID, "--client-secret", m.Bootstrap.ClientSecret})
	if err != nil {
		t.Fatalf("users create: %v\n%s", err, out)
	}
	var u client.User
	if err := json.Unmarshal(out.Bytes(), &u); err != nil || u.ID == "" {
		t.Fatalf("got %s (%v), want the user", out, err)
	}
	main, _ = testMain(nil)
	main.Stdin = strings.NewReader("")
	err = main.Run(context.Background(), []string{"users", "create", "--email", "bob@example.com", "--name", "Bob", "--password-stdin",
		"--url", daemontest.URL(m), "--token", "x"})
	if !errors.Is(err, errUsage) {
		t.Fatalf("--password-stdin with nothing on stdin: got %v, want a usage error", err)
	}
}
