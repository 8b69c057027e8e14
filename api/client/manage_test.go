package client_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/iam-project/iam/api/client"
)

// TestClient_Requests checks the method and path each management call
// sends.
func TestClient_Requests(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, method, path string
		call               func(c *client.Client) error
	}{
		{"DeleteUser", "DELETE", "/v1/users/u-1", func(c *client.Client) error { _, err := c.DeleteUser(ctx, "u-1"); return err }},
		{"AddAPIKey", "POST", "/v1/apps/a-1/apiKeys", func(c *client.Client) error { _, err := c.AddAPIKey(ctx, "a-1"); return err }},
		{"GrantRole", "PUT", "/v1/identities/u-1/roles/Viewer", func(c *client.Client) error { _, err := c.GrantRole(ctx, "u-1", "Viewer"); return err }},
		{"RevokeRole", "DELETE", "/v1/identities/u-1/roles/Viewer", func(c *client.Client) error { _, err := c.RevokeRole(ctx, "u-1", "Viewer"); return err }},
		{"CreateProject", "POST", "/v1/projects", func(c *client.Client) error { _, err := c.CreateProject(ctx, "p"); return err }},
		{"SetProjectMember", "PUT", "/v1/projects/p-1/members/u-1", func(c *client.Client) error {
			_, err := c.SetProjectMember(ctx, "p-1", "u-1", "pol-1")
			return err
		}},
		{"Get", "GET", "/v1/users/u-1", func(c *client.Client) error { var v map[string]any; return c.Get(ctx, "users", "u-1", &v) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScripted(t, ok(`{"consistencyToken":"ct1.1"}`))
			c, _ := client.New([]string{srv.URL})
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			if r := srv.requests()[0]; r.method != tc.method || r.path != tc.path {
				t.Fatalf("got %s %s, want %s %s", r.method, r.path, tc.method, tc.path)
			}
		})
	}
}

type countingTransport struct{ n atomic.Int32 }

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestWithHTTPClient(t *testing.T) {
	srv := newScripted(t, ok(allowed))
	tr := &countingTransport{}
	c, err := client.New([]string{srv.URL}, client.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); len(got) != 1 || got[0] != srv.URL {
		t.Fatalf("got endpoints %v, want [%s]", got, srv.URL)
	}
	if _, err := c.Check(context.Background(), checkReq()); err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() != 1 {
		t.Fatalf("got %d requests through the given client, want 1", tr.n.Load())
	}
}

func TestSession_Observe(t *testing.T) {
	c, _ := client.New([]string{"http://127.0.0.1:1"})
	s := c.Session()
	s.Observe("ct1.z")
	s.Observe("ct1.5") // older: the session does not move back
	if s.Token() != "ct1.z" {
		t.Fatalf("got %q, want ct1.z", s.Token())
	}
}
