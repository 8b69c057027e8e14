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
		{"DeleteApp", "DELETE", "/v1/apps/a-1", func(c *client.Client) error { _, err := c.DeleteApp(ctx, "a-1"); return err }},
		{"SetAppDefaultProject", "PATCH", "/v1/apps/a-1", func(c *client.Client) error {
			_, err := c.SetAppDefaultProject(ctx, "a-1", "hrn:here:authorization::org1:project/p-1")
			return err
		}},
		{"RemoveCredential", "DELETE", "/v1/apps/a-1/credentials/c-1", func(c *client.Client) error { _, err := c.RemoveCredential(ctx, "a-1", "c-1"); return err }},
		{"RemoveAPIKey", "DELETE", "/v1/apps/a-1/apiKeys/k-1", func(c *client.Client) error { _, err := c.RemoveAPIKey(ctx, "a-1", "k-1"); return err }},
		{"RemoveProjectMember", "DELETE", "/v1/projects/p-1/members/u-1", func(c *client.Client) error { _, err := c.RemoveProjectMember(ctx, "p-1", "u-1"); return err }},
		{"RemoveProjectResource", "DELETE", "/v1/projects/p-1/resources/hrn:here:data::org1:x%2Fy", func(c *client.Client) error {
			_, err := c.RemoveProjectResource(ctx, "p-1", "hrn:here:data::org1:x/y")
			return err
		}},
		{"SetResourceLinkable", "PATCH", "/v1/projects/p-1/resources/hrn:here:data::org1:x", func(c *client.Client) error {
			_, err := c.SetResourceLinkable(ctx, "p-1", "hrn:here:data::org1:x", false)
			return err
		}},
		{"CreateProjectPolicy", "POST", "/v1/projects/p-1/policies", func(c *client.Client) error {
			_, err := c.CreateProjectPolicy(ctx, "p-1", "editors", client.Statement{Effect: "allow", Actions: []string{"read"}, Resources: []string{"hrn:here:data::org1:x"}})
			return err
		}},
		{"DeleteProjectPolicy", "DELETE", "/v1/projects/p-1/policies/pp-1", func(c *client.Client) error { _, err := c.DeleteProjectPolicy(ctx, "p-1", "pp-1"); return err }},
		{"SetDefaultMemberPolicies", "PATCH", "/v1/projects/p-1", func(c *client.Client) error { _, err := c.SetDefaultMemberPolicies(ctx, "p-1"); return err }},
		{"AddManager", "PUT", "/v1/groups/g-1/managers/u-1", func(c *client.Client) error { _, err := c.AddManager(ctx, "groups", "g-1", "u-1"); return err }},
		{"RemoveManager", "DELETE", "/v1/projects/p-1/managers/u-1", func(c *client.Client) error { _, err := c.RemoveManager(ctx, "projects", "p-1", "u-1"); return err }},
		{"ShareApp", "PUT", "/v1/apps/a-1/shares/g-1", func(c *client.Client) error { _, err := c.ShareApp(ctx, "a-1", "g-1"); return err }},
		{"UnshareApp", "DELETE", "/v1/apps/a-1/shares/g-1", func(c *client.Client) error { _, err := c.UnshareApp(ctx, "a-1", "g-1"); return err }},
		{"CreatePlan", "POST", "/v1/plans", func(c *client.Client) error { _, err := c.CreatePlan(ctx, "basic", "pol-1"); return err }},
		{"AttachPlan", "PUT", "/v1/plans/plan-1/attachments/u-1", func(c *client.Client) error { _, err := c.AttachPlan(ctx, "plan-1", "u-1"); return err }},
		{"DetachPlan", "DELETE", "/v1/plans/plan-1/attachments/u-1", func(c *client.Client) error { _, err := c.DetachPlan(ctx, "plan-1", "u-1"); return err }},
		{"UpdateUser", "PATCH", "/v1/users/u-1", func(c *client.Client) error { _, err := c.UpdateUser(ctx, "u-1", "Ann", ""); return err }},
		{"RevokeTokens", "POST", "/v1/users/u-1/revokeTokens", func(c *client.Client) error { _, err := c.RevokeTokens(ctx, "u-1"); return err }},
		{"SetCredentialStatus", "PATCH", "/v1/apps/a-1/credentials/c-1", func(c *client.Client) error {
			_, err := c.SetCredentialStatus(ctx, "a-1", "c-1", false)
			return err
		}},
		{"SetAPIKeyStatus", "PATCH", "/v1/apps/a-1/apiKeys/k-1", func(c *client.Client) error { _, err := c.SetAPIKeyStatus(ctx, "a-1", "k-1", true); return err }},
		{"Roles", "GET", "/v1/roles", func(c *client.Client) error { _, err := c.Roles(ctx); return err }},
		{"Permissions", "GET", "/v1/identities/u-1/permissions", func(c *client.Client) error { _, err := c.Permissions(ctx, "u-1"); return err }},
		{"GroupPermissions", "GET", "/v1/groups/g-1/permissions", func(c *client.Client) error { _, err := c.GroupPermissions(ctx, "g-1"); return err }},
		{"Managers", "GET", "/v1/apps/a-1/managers", func(c *client.Client) error { _, err := c.Managers(ctx, "apps", "a-1"); return err }},
		{"Shares", "GET", "/v1/apps/a-1/shares", func(c *client.Client) error { _, err := c.Shares(ctx, "a-1"); return err }},
		{"ProjectPolicies", "GET", "/v1/projects/p-1/policies", func(c *client.Client) error { _, err := c.ProjectPolicies(ctx, "p-1"); return err }},
		{"List", "GET", "/v1/groups", func(c *client.Client) error {
			_, err := client.List[client.GroupInfo](ctx, c, "groups", "", 0)
			return err
		}},
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
