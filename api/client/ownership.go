package client

import (
	"context"
	"net/http"
)

// Plan is a named set of policies attached like a policy.
type Plan struct {
	ID       string   `json:"id"`
	HRN      string   `json:"hrn"`
	Name     string   `json:"name"`
	Policies []string `json:"policies"`
	WriteResult
}

// pathWrite sends a write whose answer is only its WriteResult.
func (c *Client) pathWrite(ctx context.Context, method, path string, body any) (WriteResult, error) {
	var r WriteResult
	err := c.write(ctx, method, path, body, &r, &r)
	return r, err
}

// DeleteApp deletes an app for good (its credentials and API keys stop
// working).
func (c *Client) DeleteApp(ctx context.Context, id string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/apps/"+seg(id), nil)
}

// SetAppDefaultProject makes projectHRN the scope of the app's
// client-credentials tokens asked for without one.
func (c *Client) SetAppDefaultProject(ctx context.Context, appID, projectHRN string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPatch, "/v1/apps/"+seg(appID), map[string]any{"defaultProject": projectHRN})
}

// RemoveCredential removes an app's client credential.
func (c *Client) RemoveCredential(ctx context.Context, appID, credentialID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/apps/"+seg(appID)+"/credentials/"+seg(credentialID), nil)
}

// RemoveAPIKey removes an app's API key.
func (c *Client) RemoveAPIKey(ctx context.Context, appID, keyID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/apps/"+seg(appID)+"/apiKeys/"+seg(keyID), nil)
}

// RemoveProjectMember takes an identity or group out of a project.
func (c *Client) RemoveProjectMember(ctx context.Context, projectID, memberID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/projects/"+seg(projectID)+"/members/"+seg(memberID), nil)
}

// RemoveProjectResource takes a resource out of a project.
func (c *Client) RemoveProjectResource(ctx context.Context, projectID, hrn string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/projects/"+seg(projectID)+"/resources/"+seg(hrn), nil)
}

// SetResourceLinkable says whether a resource homed in the project may be
// linked into other projects.
func (c *Client) SetResourceLinkable(ctx context.Context, projectID, hrn string, linkable bool) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPatch, "/v1/projects/"+seg(projectID)+"/resources/"+seg(hrn), map[string]any{"linkable": linkable})
}

// CreateProjectPolicy creates a policy that lives in a project.
func (c *Client) CreateProjectPolicy(ctx context.Context, projectID, name string, statements ...Statement) (ProjectPolicy, error) {
	var p ProjectPolicy
	err := c.write(ctx, http.MethodPost, "/v1/projects/"+seg(projectID)+"/policies",
		map[string]any{"name": name, "statements": statements}, &p, &p.WriteResult)
	return p, err
}

// DeleteProjectPolicy deletes a project's policy.
func (c *Client) DeleteProjectPolicy(ctx context.Context, projectID, policyID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/projects/"+seg(projectID)+"/policies/"+seg(policyID), nil)
}

// SetDefaultMemberPolicies sets the policies a member added to the project
// without policies gets.
func (c *Client) SetDefaultMemberPolicies(ctx context.Context, projectID string, policyIDs ...string) (WriteResult, error) {
	if policyIDs == nil {
		policyIDs = []string{}
	}
	return c.pathWrite(ctx, http.MethodPatch, "/v1/projects/"+seg(projectID), map[string]any{"defaultMemberPolicies": policyIDs})
}

// AddManager makes an identity or group a manager of an app, group or
// project; kind is "apps", "groups" or "projects".
func (c *Client) AddManager(ctx context.Context, kind, id, managerID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPut, "/v1/"+seg(kind)+"/"+seg(id)+"/managers/"+seg(managerID), nil)
}

// RemoveManager removes a manager (the last one cannot be removed:
// conflict).
func (c *Client) RemoveManager(ctx context.Context, kind, id, managerID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/"+seg(kind)+"/"+seg(id)+"/managers/"+seg(managerID), nil)
}

// ShareApp shares an app with an identity or group (read, write, manage
// and share).
func (c *Client) ShareApp(ctx context.Context, appID, withID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPut, "/v1/apps/"+seg(appID)+"/shares/"+seg(withID), nil)
}

// UnshareApp takes an app's share from an identity or group.
func (c *Client) UnshareApp(ctx context.Context, appID, withID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/apps/"+seg(appID)+"/shares/"+seg(withID), nil)
}

// CreatePlan creates a plan of realm policies.
func (c *Client) CreatePlan(ctx context.Context, name string, policyIDs ...string) (Plan, error) {
	var p Plan
	err := c.write(ctx, http.MethodPost, "/v1/plans", map[string]any{"name": name, "policies": policyIDs}, &p, &p.WriteResult)
	return p, err
}

// AttachPlan attaches a plan to an identity or group.
func (c *Client) AttachPlan(ctx context.Context, planID, targetID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPut, "/v1/plans/"+seg(planID)+"/attachments/"+seg(targetID), nil)
}

// DetachPlan detaches a plan from an identity or group.
func (c *Client) DetachPlan(ctx context.Context, planID, targetID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodDelete, "/v1/plans/"+seg(planID)+"/attachments/"+seg(targetID), nil)
}

// UpdateUser changes a user's name or email (an empty one is left as it
// is); users may change their own.
func (c *Client) UpdateUser(ctx context.Context, id, name, email string) (WriteResult, error) {
	body := map[string]any{}
	if name != "" {
		body["name"] = name
	}
	if email != "" {
		body["email"] = email
	}
	return c.pathWrite(ctx, http.MethodPatch, "/v1/users/"+seg(id), body)
}

// RevokeTokens revokes every token an identity holds now.
func (c *Client) RevokeTokens(ctx context.Context, userID string) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPost, "/v1/users/"+seg(userID)+"/revokeTokens", nil)
}

// SetCredentialStatus enables or disables an app's client credential.
func (c *Client) SetCredentialStatus(ctx context.Context, appID, credentialID string, enabled bool) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPatch, "/v1/apps/"+seg(appID)+"/credentials/"+seg(credentialID), map[string]any{"status": enabledWord(enabled)})
}

// SetAPIKeyStatus enables or disables an app's API key.
func (c *Client) SetAPIKeyStatus(ctx context.Context, appID, keyID string, enabled bool) (WriteResult, error) {
	return c.pathWrite(ctx, http.MethodPatch, "/v1/apps/"+seg(appID)+"/apiKeys/"+seg(keyID), map[string]any{"status": enabledWord(enabled)})
}

func enabledWord(enabled bool) string {
	if enabled {
		return "enabled"
	}
	return "disabled"
}
