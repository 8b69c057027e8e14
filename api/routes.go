package api

import (
	"context"
	"net/http"
	"time"
)

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// handle registers a handler that needs an authenticated caller (apiKeyOK:
// an API key is accepted too).
type handle func(pattern string, apiKeyOK bool, fn func(http.ResponseWriter, *http.Request) error)

func (s *Server) routes() {
	m := http.NewServeMux()
	s.mux = m
	h := func(pattern string, apiKeyOK bool, fn func(http.ResponseWriter, *http.Request) error) {
		m.Handle(pattern, s.authed(apiKeyOK, fn))
	}
	// Public: tokens, discovery, health, metrics.
	m.HandleFunc("POST /oauth2/token", s.token)
	m.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.metricsHandler())

	h("POST /v1/check", true, s.check)
	h("GET /v1/replicas", true, s.listReplicas)
	h("GET /v1/changes", false, s.changes)

	h("POST /v1/users", false, s.createUser)
	h("PATCH /v1/users/{id}", false, s.setStatus)
	h("DELETE /v1/users/{id}", false, s.deleteIdentity)
	h("POST /v1/apps", false, s.createApp)
	h("PATCH /v1/apps/{id}", false, s.setStatus)
	h("DELETE /v1/apps/{id}", false, s.deleteIdentity)
	h("POST /v1/apps/{id}/credentials", false, s.addCredential)
	h("DELETE /v1/apps/{id}/credentials/{credentialId}", false, s.removeCredential)
	h("POST /v1/apps/{id}/apiKeys", false, s.addAPIKey)
	h("DELETE /v1/apps/{id}/apiKeys/{keyId}", false, s.removeAPIKey)
	h("POST /v1/groups", false, s.createGroup)
	h("PUT /v1/groups/{id}/members/{identityId}", false, s.addMember)
	h("DELETE /v1/groups/{id}/members/{identityId}", false, s.removeMember)
	h("GET /v1/roles", true, s.listRoles)
	h("PUT /v1/identities/{identityId}/roles/{role}", false, s.grantRole)
	h("DELETE /v1/identities/{identityId}/roles/{role}", false, s.revokeRole)
	h("GET /v1/identities/{identityId}/permissions", true, s.permissions)
	h("POST /v1/policies", false, s.createPolicy)
	h("PUT /v1/policies/{id}/attachments/{targetId}", false, s.attachPolicy)
	h("DELETE /v1/policies/{id}/attachments/{targetId}", false, s.detachPolicy)
	h("POST /v1/projects", false, s.createProject)
	h("PUT /v1/projects/{id}/members/{memberId}", false, s.setProjectMember)
	h("DELETE /v1/projects/{id}/members/{memberId}", false, s.removeProjectMember)
	h("PUT /v1/projects/{id}/resources/{hrn...}", false, s.addProjectResource)
	h("DELETE /v1/projects/{id}/resources/{hrn...}", false, s.removeProjectResource)
	for name, k := range kinds {
		h("GET /v1/"+name+"/{id}", true, s.getEntity(k))
		h("GET /v1/"+name, true, s.listEntities(k))
	}
	// Each feature area registers its own routes in its own file.
	s.identityRoutes(m, h)
	s.uiRoutes(m, h)
	// Anything else is a problem-details 404, and a wrong method a 405.
	m.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, notFoundPath(r.URL.Path))
	}))
}
