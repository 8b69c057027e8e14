package api

import "net/http"

// identityRoutes registers the identity-provider endpoints: sign-in, the
// authorization-code flow, passwords, invitations (issue "Authentication").
func (s *Server) identityRoutes(m *http.ServeMux, h handle) {}
