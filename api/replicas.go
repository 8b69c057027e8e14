package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReplicaStatus is one region's row of GET /v1/replicas.
type ReplicaStatus struct {
	Region       string  `json:"region"`
	AppliedToken string  `json:"appliedToken"`
	HeadToken    string  `json:"headToken"`
	AppliedSeq   uint64  `json:"appliedSequence"`
	HeadSeq      uint64  `json:"headSequence"`
	LagEvents    uint64  `json:"lagEvents"`
	LagSeconds   float64 `json:"lagSeconds"`
	Healthy      bool    `json:"healthy"`
	Error        string  `json:"error,omitempty"`
}

// HealthFunc reports a region's projector health (nil error when healthy).
type HealthFunc func(region string) error

// lagMonitor computes each region's lag once a second (and on demand) and
// keeps the metrics current.
type lagMonitor struct {
	s      *Server
	health HealthFunc

	mu   sync.Mutex
	last []ReplicaStatus
	// history holds the last minutes of every region's status, one sample
	// a second, for the lag page (ui.go).
	history lagHistory
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newLagMonitor(s *Server) *lagMonitor { return &lagMonitor{s: s} }

// SetHealth installs the projectors' health function.
func (s *Server) SetHealth(h HealthFunc) { s.lag.health = h }

func (l *lagMonitor) start(ctx context.Context) {
	ctx, l.cancel = context.WithCancel(ctx)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			sts := l.measure(ctx)
			now := l.s.cfg.Now()
			l.history.add(now, append(sts, l.s.peerStatuses(ctx, now)...))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (l *lagMonitor) stop() {
	if l.cancel != nil {
		l.cancel()
		l.wg.Wait()
	}
}

// measure computes every region's status. Lag in seconds is the age of the
// oldest entry a region has not applied: the append time of applied+1.
func (l *lagMonitor) measure(ctx context.Context) []ReplicaStatus {
	s := l.s
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	head, headErr := s.evlog.Head(ctx)
	now := s.cfg.Now()
	out := make([]ReplicaStatus, 0, len(s.regions))
	for _, region := range s.regions {
		rep := s.replicas[region]
		applied := rep.Applied()
		st := ReplicaStatus{Region: region, AppliedSeq: applied, AppliedToken: FormatToken(applied), Healthy: true}
		if headErr == nil {
			st.HeadSeq = max(head, applied)
			st.HeadToken = FormatToken(st.HeadSeq)
			st.LagEvents = st.HeadSeq - applied
			if st.LagEvents > 0 {
				if e, err := s.evlog.Get(ctx, applied+1); err == nil {
					st.LagSeconds = max(0, now.Sub(e.Time).Seconds())
				}
			}
		} else {
			st.Healthy, st.Error = false, "log unreachable: "+headErr.Error()
		}
		s.judgeLag(&st, rep, now, headErr) // forward.go: lag while cut off, threshold
		if l.health != nil {
			if err := l.health(region); err != nil {
				st.Healthy, st.Error = false, err.Error()
			}
		}
		if m := s.metrics; m != nil {
			m.appliedSeq.WithLabelValues(region).Set(float64(applied))
			m.headSeq.WithLabelValues(region).Set(float64(st.HeadSeq))
			m.lagEvents.WithLabelValues(region).Set(float64(st.LagEvents))
			m.lagSeconds.WithLabelValues(region).Set(st.LagSeconds)
			h := 0.0
			if st.Healthy {
				h = 1
			}
			m.healthy.WithLabelValues(region).Set(h)
		}
		out = append(out, st)
	}
	l.mu.Lock()
	l.last = out
	l.mu.Unlock()
	s.publishStatus(out) // forward.go: tell the other regions
	return out
}

func (s *Server) listReplicas(w http.ResponseWriter, r *http.Request) error {
	sts := s.lag.measure(r.Context())
	sts = append(sts, s.peerStatuses(r.Context(), s.cfg.Now())...) // forward.go: the other regions
	writeJSON(w, http.StatusOK, map[string]any{"replicas": sts})
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz: the log answers and every replica's projector is healthy.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	sts := s.lag.measure(r.Context())
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
