package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMetrics_Instrument is what counting each answer by route and
// status (Metrics.instrument) adds to a request: the same mux served bare
// and instrumented, its handler doing nothing.
func BenchmarkMetrics_Instrument(b *testing.B) {
	mux := http.NewServeMux()
	nothing := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, p := range []string{"POST /oauth2/token", "GET /metrics", "POST /v1/check", "GET /v1/replicas",
		"POST /v1/groups", "PUT /v1/groups/{id}/members/{identityId}", "GET /v1/groups/{id}"} {
		mux.Handle(p, nothing)
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"instrumented", NewMetrics([]string{"eu-west"}).instrument(mux, mux)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodPost, "/v1/check", nil)
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
