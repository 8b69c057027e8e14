package sim

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iam-project/iam/api/client"
)

// Metrics are a run's Prometheus metrics: every retry of the workload's
// clients is counted here as it happens (and kept in the report's
// timeline), as are the measured propagation delays and times-to-revoke.
// WriteReport writes them as metrics.txt in the text exposition format.
type Metrics struct {
	Registry *prometheus.Registry
	// Retries counts retries and failovers of the workload's clients, by
	// the client's home region, source ("write" or "check"), cause
	// (api/client.Causes) and kind ("retry" or "failover").
	Retries *prometheus.CounterVec
	// BackoffDelay is the wait before each retry or failover, by cause.
	BackoffDelay *prometheus.HistogramVec
	// Propagation is the delay from a write's acknowledgement to a region
	// having applied it, by region.
	Propagation *prometheus.HistogramVec
	// TimeToRevoke is the delay from a revoke's acknowledgement until no
	// region allows the revoked access.
	TimeToRevoke prometheus.Histogram
	// ProbePolls counts the measurement's own re-sent probes, by kind
	// ("propagation", "revoke", "heal"): polls, not retries.
	ProbePolls *prometheus.CounterVec
}

// NewMetrics makes a run's metrics, each series present at 0 from the
// start for every region and cause.
func NewMetrics(regions []string) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 18) // 0.5ms … ~65s
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iamsim_client_retries_total",
			Help: "Retries and failovers of the simulated clients, by home region, source, cause and kind."},
			[]string{"region", "source", "cause", "kind"}),
		BackoffDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iamsim_client_backoff_seconds",
			Help: "Wait before each retry or failover of the simulated clients, by cause.", Buckets: buckets},
			[]string{"cause"}),
		Propagation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iamsim_propagation_seconds",
			Help: "Delay from a write's acknowledgement until the region has applied it.", Buckets: buckets},
			[]string{"region"}),
		TimeToRevoke: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "iamsim_time_to_revoke_seconds",
			Help: "Delay from a revoke's acknowledgement until no region allows the revoked access.", Buckets: buckets}),
		ProbePolls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iamsim_probe_polls_total",
			Help: "Probes the measurement re-sent while waiting, by kind."}, []string{"kind"}),
	}
	m.Registry.MustRegister(m.Retries, m.BackoffDelay, m.Propagation, m.TimeToRevoke, m.ProbePolls)
	for _, r := range regions {
		m.Propagation.WithLabelValues(r)
		for _, src := range []string{"write", "check"} {
			for _, c := range client.Causes {
				m.Retries.WithLabelValues(r, src, string(c), "retry")
				m.Retries.WithLabelValues(r, src, string(c), "failover")
			}
		}
	}
	for _, c := range client.Causes {
		m.BackoffDelay.WithLabelValues(string(c))
	}
	for _, k := range []string{"propagation", "revoke", "heal"} {
		m.ProbePolls.WithLabelValues(k)
	}
	return m
}
