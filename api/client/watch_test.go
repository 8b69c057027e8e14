package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	iamclient "github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

var errEnough = errors.New("enough")

// TestWatch_Resumes follows a feed whose connections each end after one
// event: every reconnection carries Last-Event-ID, and each change is seen
// once, in order.
func TestWatch_Resumes(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: ct1.%d\nevent: change\ndata: {\"token\":\"ct1.%d\",\"commits\":[{\"actor\":\"a-1\",\"events\":[{\"type\":\"GroupCreated\",\"data\":{}}]}]}\n\n", n, n)
		fmt.Fprintf(w, ": a comment line, ignored\n\nid: ct1.%d\nevent: checkpoint\ndata: {\"token\":\"ct1.%d\",\"headToken\":\"ct1.9\"}\n\n", n, n)
	}))
	defer srv.Close()
	c, err := iamclient.New([]string{srv.URL}, iamclient.WithToken("tok"), iamclient.WithBackoff(time.Millisecond, time.Millisecond, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	var changes, checkpoints []string
	err = c.Watch(context.Background(), "ct1.0", func(e iamclient.FeedEvent) error {
		if e.Checkpoint != nil {
			checkpoints = append(checkpoints, e.Checkpoint.HeadToken)
			return nil
		}
		changes = append(changes, e.Change.Token)
		if len(changes) == 3 {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if fmt.Sprint(changes) != "[ct1.1 ct1.2 ct1.3]" || len(checkpoints) != 2 {
		t.Fatalf("got changes %v and %d checkpoints, want [ct1.1 ct1.2 ct1.3] and 2", changes, len(checkpoints))
	}
	if fmt.Sprint(lastIDs) != "[ct1.0 ct1.1 ct1.2]" {
		t.Fatalf("got Last-Event-ID %q, want each connection to resume after the last event", lastIDs)
	}
}

// TestWatch_Refused ends the watch on an answer retrying cannot mend.
func TestWatch_Refused(t *testing.T) {
	srv := newScripted(t, answer{status: http.StatusUnauthorized, body: `{"code":"unauthenticated","detail":"token expired"}`})
	c, _ := iamclient.New([]string{srv.URL}, iamclient.WithToken("old"))
	err := c.Watch(context.Background(), "", func(iamclient.FeedEvent) error { return nil })
	if !errors.Is(err, iamclient.ErrUnauthenticated) || len(srv.requests()) != 1 {
		t.Fatalf("got %v after %d requests, want unauthenticated after 1", err, len(srv.requests()))
	}
}

// TestClient_RealmReads reads a real iamd's feed, roles, permissions,
// managers, shares and lists through the client: each decodes what the
// server answers.
func TestClient_RealmReads(t *testing.T) {
	m := daemontest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := daemontest.URL(m)
	c, err := iamclient.New([]string{base}, iamclient.WithTokenSource(
		iamclient.ClientCredentials(ctx, base+"/oauth2/token", m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "", nil)))
	if err != nil {
		t.Fatal(err)
	}
	realm := m.Bootstrap.Realm
	var groups []string
	for _, name := range []string{"g-a", "g-b", "g-c"} {
		g, err := c.CreateGroup(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g.ID)
	}
	app, err := c.CreateApp(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.CreatePolicy(ctx, "read", iamclient.Statement{Effect: "allow", Actions: []string{"read"}, Resources: []string{"hrn:here:data::" + realm + ":x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachPolicy(ctx, pol.ID, groups[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ShareApp(ctx, app.ID, groups[1]); err != nil {
		t.Fatal(err)
	}
	plan, err := c.CreatePlan(ctx, "basic", pol.ID)
	if err != nil || plan.ID == "" {
		t.Fatalf("CreatePlan: got %+v, %v", plan, err)
	}

	page, err := iamclient.List[iamclient.GroupInfo](ctx, c, "groups", "", 2)
	if err != nil || len(page.Items) != 2 || page.NextPageToken == "" {
		t.Fatalf("List, 2 a page: got %+v, %v; want 2 groups and a next page", page, err)
	}
	all, err := iamclient.ListAll[iamclient.GroupInfo](ctx, c, "groups")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListAll: got %d groups (%v), want 3", len(all), err)
	}
	roles, err := c.Roles(ctx)
	if err != nil || len(roles) == 0 || roles[0].Name == "" {
		t.Fatalf("Roles: got %+v, %v", roles, err)
	}
	perms, err := c.GroupPermissions(ctx, groups[0])
	if err != nil || len(perms) != 1 || perms[0].Source.ID != pol.ID {
		t.Fatalf("GroupPermissions: got %+v, %v; want read from %s", perms, err, pol.ID)
	}
	// The bootstrap admin's own: its OrgAdmin role, and what it manages.
	mine, err := c.Permissions(ctx, app.ID)
	if err != nil || mine == nil {
		t.Fatalf("Permissions: got %+v, %v", mine, err)
	}
	managers, err := c.Managers(ctx, "apps", app.ID)
	if err != nil || len(managers) != 1 || managers[0].Kind != "app" {
		t.Fatalf("Managers: got %+v, %v; want the creating app", managers, err)
	}
	shares, err := c.Shares(ctx, app.ID)
	if err != nil || len(shares) != 1 || shares[0].ID != groups[1] || shares[0].Kind != "group" {
		t.Fatalf("Shares: got %+v, %v; want %s", shares, err, groups[1])
	}

	// The feed from the first entry, then resumed after the third change:
	// the resumed feed starts at the fourth.
	var tokens []string
	err = c.Watch(ctx, "", func(e iamclient.FeedEvent) error {
		if e.Change != nil {
			tokens = append(tokens, e.Change.Token)
			if len(tokens) == 5 {
				return errEnough
			}
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("Watch: %v", err)
	}
	var resumed string
	err = c.Watch(ctx, tokens[2], func(e iamclient.FeedEvent) error {
		if e.Change != nil {
			resumed = e.Change.Token
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) || resumed != tokens[3] {
		t.Fatalf("Watch after %s: got %s (%v), want %s", tokens[2], resumed, err, tokens[3])
	}
}
