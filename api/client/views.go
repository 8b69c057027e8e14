package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	iam "github.com/iam-project/iam"
)

// Identity is a user or an app as GET /v1/users/{id}, GET /v1/apps/{id}
// and their lists show it.
type Identity struct {
	ID             string          `json:"id"`
	HRN            string          `json:"hrn"`
	Kind           string          `json:"kind"` // "user" or "app"
	Status         string          `json:"status"`
	Email          string          `json:"email,omitempty"`
	Name           string          `json:"name,omitempty"`
	RedirectURIs   []string        `json:"redirectUris,omitempty"`
	Groups         []string        `json:"groups"`
	Roles          []string        `json:"roles"`
	Policies       []string        `json:"policies"`
	Projects       []string        `json:"projects"`
	Credentials    []CredentialRef `json:"credentials,omitempty"`
	APIKeys        []string        `json:"apiKeys,omitempty"`
	DefaultProject string          `json:"defaultProject,omitempty"` // an app's default project HRN
}

// CredentialRef names an app's client credential (never its secret).
type CredentialRef struct {
	ID       string `json:"id"`
	ClientID string `json:"clientId"`
}

// GroupInfo is a group as GET /v1/groups/{id} shows it.
type GroupInfo struct {
	ID       string   `json:"id"`
	HRN      string   `json:"hrn"`
	Name     string   `json:"name"`
	Members  []string `json:"members"`
	Policies []string `json:"policies"`
	Projects []string `json:"projects"`
}

// PolicyInfo is a realm policy as GET /v1/policies/{id} shows it.
type PolicyInfo struct {
	ID         string      `json:"id"`
	HRN        string      `json:"hrn"`
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
	AttachedTo []string    `json:"attachedTo"`
}

// ProjectInfo is a project as GET /v1/projects/{id} shows it.
type ProjectInfo struct {
	ID        string            `json:"id"`
	HRN       string            `json:"hrn"`
	Name      string            `json:"name"`
	Members   []ProjectMember   `json:"members"`
	Resources []ProjectResource `json:"resources"`
}

// ProjectMember is an identity or group in a project with the policies
// (realm or project policy ids) its membership gives.
type ProjectMember struct {
	ID       string   `json:"id"`
	Policies []string `json:"policies"`
}

// ProjectResource is a resource in a project: Relation "home" or "link".
type ProjectResource struct {
	HRN      string `json:"hrn"`
	Relation string `json:"relation"`
}

// ProjectPolicies is GET /v1/projects/{id}/policies: the project's own
// policies and the ones a member added without policies gets.
type ProjectPolicies struct {
	Items                 []ProjectPolicy `json:"items"`
	DefaultMemberPolicies []string        `json:"defaultMemberPolicies"`
}

// ProjectPolicy is a policy that lives in a project.
type ProjectPolicy struct {
	ID         string      `json:"id"`
	HRN        string      `json:"hrn"`
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
	WriteResult
}

// Ref is a manager or a sharee: an identity or group id and its kind
// ("user", "app" or "group").
type Ref struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// Page is one page of a list.
type Page[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"nextPageToken,omitempty"`
}

// List reads one page of GET /v1/<kind> ("users", "apps", "groups",
// "policies", "projects"); an empty pageToken is the first page, limit 0
// the server's page size (at most 100).
func List[T any](ctx context.Context, c *Client, kind, pageToken string, limit int) (Page[T], error) {
	q := url.Values{}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p Page[T]
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/" + seg(kind), query: q, read: true}, &p)
	return p, err
}

// ListAll follows List's pages to the end.
func ListAll[T any](ctx context.Context, c *Client, kind string) ([]T, error) {
	var out []T
	token := ""
	for {
		p, err := List[T](ctx, c, kind, token, 100)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.NextPageToken == "" {
			return out, nil
		}
		token = p.NextPageToken
	}
}

// Roles lists the realm's predefined roles (GET /v1/roles).
func (c *Client) Roles(ctx context.Context) ([]iam.RoleDefinition, error) {
	var out struct {
		Items []iam.RoleDefinition `json:"items"`
	}
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/roles", read: true}, &out)
	return out.Items, err
}

// Permissions lists an identity's effective permissions with where each
// comes from (GET /v1/identities/{id}/permissions).
func (c *Client) Permissions(ctx context.Context, identityID string) ([]iam.Permission, error) {
	var out struct {
		Permissions []iam.Permission `json:"permissions"`
	}
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/identities/" + seg(identityID) + "/permissions", read: true}, &out)
	return out.Permissions, err
}

// GroupPermissions lists a group's effective permissions
// (GET /v1/groups/{id}/permissions).
func (c *Client) GroupPermissions(ctx context.Context, groupID string) ([]iam.Permission, error) {
	var out struct {
		Permissions []iam.Permission `json:"permissions"`
	}
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/groups/" + seg(groupID) + "/permissions", read: true}, &out)
	return out.Permissions, err
}

// Managers lists the managers of an app, group or project; kind is
// "apps", "groups" or "projects".
func (c *Client) Managers(ctx context.Context, kind, id string) ([]Ref, error) {
	var out struct {
		Managers []Ref `json:"managers"`
	}
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/" + seg(kind) + "/" + seg(id) + "/managers", read: true}, &out)
	return out.Managers, err
}

// Shares lists the identities and groups an app is shared with.
func (c *Client) Shares(ctx context.Context, appID string) ([]Ref, error) {
	var out struct {
		Shares []Ref `json:"shares"`
	}
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/apps/" + seg(appID) + "/shares", read: true}, &out)
	return out.Shares, err
}

// ProjectPolicies lists a project's own policies and its default member
// policies.
func (c *Client) ProjectPolicies(ctx context.Context, projectID string) (ProjectPolicies, error) {
	var out ProjectPolicies
	_, err := c.do(ctx, &request{method: http.MethodGet, path: "/v1/projects/" + seg(projectID) + "/policies", read: true}, &out)
	return out, err
}
