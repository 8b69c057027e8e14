package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iam-project/iam/replica/lag"
)

// ReplicaStatus is one region's row of GET /v1/replicas.
type ReplicaStatus = lag.Status

// HealthFunc reports a region's projector health (nil error when healthy).
type HealthFunc func(region string) error

// SetHealth installs the projectors' health function. Call it before Start.
func (s *Server) SetHealth(h HealthFunc) { s.lag.SetHealth(h) }

// ReceiveStatus takes a status published by another process (wire it to
// eventlog/bus Subscribe on bus.StatusSubjectPrefix + ".*"). Statuses of
// regions this process serves itself are ignored.
func (s *Server) ReceiveStatus(data []byte) { s.lag.Receive(data) }

func (s *Server) listReplicas(w http.ResponseWriter, r *http.Request) error {
	sts := s.lag.Measure(r.Context())
	sts = append(sts, s.lag.Peers(r.Context(), s.cfg.Now())...) // the other regions
	writeJSON(w, http.StatusOK, map[string]any{"replicas": sts})
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: every replica is healthy (its projector runs, its lag is within
// the threshold) as of the lag monitor's newest measurement, taken once a
// second: a probe costs no log round trip.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	sts, ok := s.lag.Last()
	if !ok {
		sts = s.lag.Measure(r.Context())
	}
	ready := true
	for _, st := range sts {
		ready = ready && st.Healthy
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]any{"ready": ready, "replicas": sts})
}

func (s *Server) metricsHandler() http.Handler {
	if s.metrics == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
}
