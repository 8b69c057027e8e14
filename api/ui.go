package api

import "net/http"

// uiRoutes registers the pages for people (the lag chart).
func (s *Server) uiRoutes(m *http.ServeMux, h handle) {}
