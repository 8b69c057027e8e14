package api

import (
	"net/http"

	iam "github.com/iam-project/iam"
)

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
	m.HandleFunc("GET /oauth2/userinfo", s.userinfo)
	m.HandleFunc("POST /oauth2/userinfo", s.userinfo)
	m.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", s.metricsHandler())
	m.HandleFunc("GET /openapi.json", s.openAPI) // openapi.go

	h("POST /v1/check", true, s.check)
	h("POST /v1/simulate", false, s.simulate) // simulate.go
	h("GET /v1/replicas", true, s.listReplicas)
	h("GET /v1/changes", false, s.changes)

	h("POST /v1/users", false, s.createUser)
	h("PATCH /v1/users/{id}", false, s.patchUser) // people.go
	h("DELETE /v1/users/{id}", false, s.deleteIdentity)
	h("POST /v1/apps", false, s.createApp)
	h("PATCH /v1/apps/{id}", false, s.patchApp)
	h("DELETE /v1/apps/{id}", false, s.deleteIdentity)
	h("POST /v1/apps/{id}/credentials", false, s.addCredential)
	h("DELETE /v1/apps/{id}/credentials/{credentialId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.RemoveCredential{App: r.PathValue("id"), CredentialID: r.PathValue("credentialId")}
	}))
	h("POST /v1/apps/{id}/apiKeys", false, s.addAPIKey)
	h("DELETE /v1/apps/{id}/apiKeys/{keyId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.RemoveAPIKey{App: r.PathValue("id"), KeyID: r.PathValue("keyId")}
	}))
	h("POST /v1/groups", false, s.createGroup)
	h("PUT /v1/groups/{id}/members/{identityId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.AddMember{Group: r.PathValue("id"), Identity: r.PathValue("identityId")}
	}))
	h("GET /v1/groups/{id}/permissions", true, s.groupPermissions) // people.go
	h("DELETE /v1/groups/{id}/members/{identityId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.RemoveMember{Group: r.PathValue("id"), Identity: r.PathValue("identityId")}
	}))
	h("GET /v1/roles", true, s.listRoles)
	h("PUT /v1/identities/{identityId}/roles/{role}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.GrantRole{Identity: r.PathValue("identityId"), Role: r.PathValue("role")}
	}))
	h("DELETE /v1/identities/{identityId}/roles/{role}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.RevokeRole{Identity: r.PathValue("identityId"), Role: r.PathValue("role")}
	}))
	h("GET /v1/identities/{identityId}/permissions", true, s.permissions)
	h("GET /v1/identities/{identityId}/accessChanges", true, s.accessChanges) // history.go
	h("POST /v1/policies", false, s.createPolicy)
	h("PUT /v1/policies/{id}/attachments/{targetId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.AttachPolicy{Policy: r.PathValue("id"), Target: r.PathValue("targetId")}
	}))
	h("DELETE /v1/policies/{id}/attachments/{targetId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.DetachPolicy{Policy: r.PathValue("id"), Target: r.PathValue("targetId")}
	}))
	h("POST /v1/projects", false, s.createProject)
	h("PUT /v1/projects/{id}/members/{memberId}", false, s.setProjectMember)
	h("DELETE /v1/projects/{id}/members/{memberId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.RemoveProjectMember{Project: r.PathValue("id"), Member: r.PathValue("memberId")}
	}))
	h("PUT /v1/projects/{id}/resources/{hrn...}", false, s.addProjectResource)
	h("DELETE /v1/projects/{id}/resources/{hrn...}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.RemoveProjectResource{Project: r.PathValue("id"), HRN: r.PathValue("hrn")}
	}))
	for name, k := range kinds {
		h("GET /v1/"+name+"/{id}", true, s.getEntity(k))
		h("GET /v1/"+name, true, s.listEntities(k))
	}
	// Each feature area registers its own routes in its own file.
	s.identityRoutes(m, h)
	s.managerRoutes(h)
	s.shareRoutes(h)         // shares.go
	s.projectPolicyRoutes(h) // projectpolicies.go
	s.lookupRoutes(h)        // lookup.go
	s.authzenRoutes(m)       // authzen.go
	s.uiRoutes(m, h)
	s.joinRoutes(m, h) // digest.go
	// Anything else is a problem-details 404, and a wrong method a 405.
	m.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, notFoundPath(r.URL.Path))
	}))
}
