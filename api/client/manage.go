package client

import (
	"context"
	"net/http"
	"net/url"
)

// WriteResult is what every successful write answers.
type WriteResult struct {
	// ConsistencyToken is the write's position in the log: a read at least
	// as fresh as it sees the write.
	ConsistencyToken string `json:"consistencyToken"`
	// Replayed is true when the server recognised the Idempotency-Key and
	// answered as the first time did (a retry of a write that had landed).
	Replayed bool `json:"-"`
	// Endpoint is the endpoint that answered.
	Endpoint string `json:"-"`
}

// User is a user as created.
type User struct {
	ID     string `json:"id"`
	HRN    string `json:"hrn"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Status string `json:"status"`
	WriteResult
}

// App is an app (a machine identity) as created.
type App struct {
	ID           string   `json:"id"`
	HRN          string   `json:"hrn"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectUris,omitempty"`
	Status       string   `json:"status"`
	WriteResult
}

// Credential is an app's client credential; ClientSecret is shown once
// (empty on a replayed write).
type Credential struct {
	CredentialID string `json:"credentialId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	WriteResult
}

// APIKey is an app's API key; Key is shown once (empty on a replayed write).
type APIKey struct {
	KeyID string `json:"keyId"`
	Key   string `json:"apiKey"`
	WriteResult
}

// Group is a group as created.
type Group struct {
	ID   string `json:"id"`
	HRN  string `json:"hrn"`
	Name string `json:"name"`
	WriteResult
}

// Statement is one statement of a policy.
type Statement struct {
	Effect    string   `json:"effect"` // "allow" or "deny"
	Actions   []string `json:"actions"`
	Resources []string `json:"resources"` // HRNs, or HRN prefixes ending in *
}

// Policy is a policy as created.
type Policy struct {
	ID         string      `json:"id"`
	HRN        string      `json:"hrn"`
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
	WriteResult
}

// Project is a project as created.
type Project struct {
	ID   string `json:"id"`
	HRN  string `json:"hrn"`
	Name string `json:"name"`
	WriteResult
}

// ReplicaStatus is one region's row of GET /v1/replicas.
type ReplicaStatus struct {
	Region       string  `json:"region"`
	AppliedToken string  `json:"appliedToken"`
	HeadToken    string  `json:"headToken"`
	LagEvents    uint64  `json:"lagEvents"`
	LagSeconds   float64 `json:"lagSeconds"`
	Healthy      bool    `json:"healthy"`
	Error        string  `json:"error,omitempty"`
}

// write sends a management write and fills out (which embeds WriteResult,
// or is one).
func (c *Client) write(ctx context.Context, method, path string, body any, out any, wr *WriteResult) error {
	m, err := c.do(ctx, &request{method: method, path: path, body: body, write: true}, out)
	if err != nil {
		return err
	}
	if wr.ConsistencyToken == "" {
		wr.ConsistencyToken = m.ConsistencyToken
	}
	wr.Replayed, wr.Endpoint = m.Replayed, m.Endpoint
	c.observe(wr.ConsistencyToken)
	return nil
}

func seg(s string) string { return url.PathEscape(s) }

// CreateUser creates a user; password may be empty (no password sign-in).
func (c *Client) CreateUser(ctx context.Context, email, name, password string) (User, error) {
	body := map[string]any{"email": email, "name": name}
	if password != "" {
		body["password"] = password
	}
	var u User
	err := c.write(ctx, http.MethodPost, "/v1/users", body, &u, &u.WriteResult)
	return u, err
}

// SetUserStatus sets a user "active" or "deactivated".
func (c *Client) SetUserStatus(ctx context.Context, id, status string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPatch, "/v1/users/"+seg(id), map[string]any{"status": status}, &r, &r)
	return r, err
}

// SetAppStatus sets an app "active" or "deactivated".
func (c *Client) SetAppStatus(ctx context.Context, id, status string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPatch, "/v1/apps/"+seg(id), map[string]any{"status": status}, &r, &r)
	return r, err
}

// DeleteUser deletes a user for good.
func (c *Client) DeleteUser(ctx context.Context, id string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodDelete, "/v1/users/"+seg(id), nil, &r, &r)
	return r, err
}

// CreateApp creates an app.
func (c *Client) CreateApp(ctx context.Context, name string, redirectURIs ...string) (App, error) {
	body := map[string]any{"name": name}
	if len(redirectURIs) > 0 {
		body["redirectUris"] = redirectURIs
	}
	var a App
	err := c.write(ctx, http.MethodPost, "/v1/apps", body, &a, &a.WriteResult)
	return a, err
}

// AddCredential adds a client credential to an app.
func (c *Client) AddCredential(ctx context.Context, appID string) (Credential, error) {
	var cr Credential
	err := c.write(ctx, http.MethodPost, "/v1/apps/"+seg(appID)+"/credentials", nil, &cr, &cr.WriteResult)
	return cr, err
}

// AddAPIKey adds an API key to an app.
func (c *Client) AddAPIKey(ctx context.Context, appID string) (APIKey, error) {
	var k APIKey
	err := c.write(ctx, http.MethodPost, "/v1/apps/"+seg(appID)+"/apiKeys", nil, &k, &k.WriteResult)
	return k, err
}

// CreateGroup creates a group.
func (c *Client) CreateGroup(ctx context.Context, name string) (Group, error) {
	var g Group
	err := c.write(ctx, http.MethodPost, "/v1/groups", map[string]any{"name": name}, &g, &g.WriteResult)
	return g, err
}

// AddMember puts an identity in a group.
func (c *Client) AddMember(ctx context.Context, groupID, identityID string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPut, "/v1/groups/"+seg(groupID)+"/members/"+seg(identityID), nil, &r, &r)
	return r, err
}

// RemoveMember takes an identity out of a group.
func (c *Client) RemoveMember(ctx context.Context, groupID, identityID string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodDelete, "/v1/groups/"+seg(groupID)+"/members/"+seg(identityID), nil, &r, &r)
	return r, err
}

// GrantRole grants a role (see GET /v1/roles) to an identity.
func (c *Client) GrantRole(ctx context.Context, identityID, role string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPut, "/v1/identities/"+seg(identityID)+"/roles/"+seg(role), nil, &r, &r)
	return r, err
}

// RevokeRole revokes a role from an identity.
func (c *Client) RevokeRole(ctx context.Context, identityID, role string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodDelete, "/v1/identities/"+seg(identityID)+"/roles/"+seg(role), nil, &r, &r)
	return r, err
}

// CreatePolicy creates a policy.
func (c *Client) CreatePolicy(ctx context.Context, name string, statements ...Statement) (Policy, error) {
	var p Policy
	err := c.write(ctx, http.MethodPost, "/v1/policies", map[string]any{"name": name, "statements": statements}, &p, &p.WriteResult)
	return p, err
}

// AttachPolicy attaches a policy to an identity or a group.
func (c *Client) AttachPolicy(ctx context.Context, policyID, targetID string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPut, "/v1/policies/"+seg(policyID)+"/attachments/"+seg(targetID), nil, &r, &r)
	return r, err
}

// DetachPolicy detaches a policy from an identity or a group.
func (c *Client) DetachPolicy(ctx context.Context, policyID, targetID string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodDelete, "/v1/policies/"+seg(policyID)+"/attachments/"+seg(targetID), nil, &r, &r)
	return r, err
}

// CreateProject creates a project.
func (c *Client) CreateProject(ctx context.Context, name string) (Project, error) {
	var p Project
	err := c.write(ctx, http.MethodPost, "/v1/projects", map[string]any{"name": name}, &p, &p.WriteResult)
	return p, err
}

// SetProjectMember makes an identity or group a member of a project with
// the given policies.
func (c *Client) SetProjectMember(ctx context.Context, projectID, memberID string, policyIDs ...string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPut, "/v1/projects/"+seg(projectID)+"/members/"+seg(memberID),
		map[string]any{"policies": policyIDs}, &r, &r)
	return r, err
}

// AddProjectResource puts a resource in a project: relation "home" (created
// there) or "link".
func (c *Client) AddProjectResource(ctx context.Context, projectID, hrn, relation string) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, http.MethodPut, "/v1/projects/"+seg(projectID)+"/resources/"+seg(hrn),
		map[string]any{"relation": relation}, &r, &r)
	return r, err
}

// Replicas returns every region's replication status, as the first endpoint
// that answers sees it.
func (c *Client) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	var out struct {
		Replicas []ReplicaStatus `json:"replicas"`
	}
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/replicas", read: true}, &out)
	return out.Replicas, err
}

// Get reads GET /v1/<kind>/{id} into out (a struct or map), at least as
// fresh as the session's token.
func (c *Client) Get(ctx context.Context, kind, id string, out any) error {
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/" + seg(kind) + "/" + seg(id), read: true}, out)
	return err
}
