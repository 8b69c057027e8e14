package api

import (
	"github.com/iam-project/iam/replica/lag"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the Prometheus metrics of one process. Every series exists (at
// zero) from the start, so dashboards and alerts see it before it moves.
type Metrics struct {
	Registry *prometheus.Registry

	appliedSeq    *prometheus.GaugeVec
	headSeq       *prometheus.GaugeVec
	lagEvents     *prometheus.GaugeVec
	lagSeconds    *prometheus.GaugeVec
	healthy       *prometheus.GaugeVec
	propagation   *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	checks        *prometheus.CounterVec
	replicaBehind *prometheus.CounterVec
	refused       *prometheus.CounterVec
	writes        prometheus.Counter
	tokens        prometheus.Counter
	passwords     *prometheus.CounterVec
	hashInFlight  prometheus.Gauge
	hashes        prometheus.Counter
	hashesRefused prometheus.Counter
}

// RetryCauses are the causes under which retries are counted.
var RetryCauses = []string{"conflict", "timeout", "no_responders", "unavailable", "reconnect", "stall", "apply"}

// NewMetrics registers the metrics for regions.
func NewMetrics(regions []string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry:   reg,
		appliedSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iam_replica_applied_sequence", Help: "Last log sequence applied by the region's replica."}, []string{"region"}),
		headSeq:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iam_replica_head_sequence", Help: "Log head sequence as last seen by the region."}, []string{"region"}),
		lagEvents:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iam_replica_lag_events", Help: "Log entries not yet applied by the region."}, []string{"region"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iam_replica_lag_seconds", Help: "Age of the oldest log entry not yet applied by the region (0 when caught up)."}, []string{"region"}),
		healthy:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iam_replica_healthy", Help: "1 when the region's projector runs without a fatal error."}, []string{"region"}),
		propagation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "iam_propagation_delay_seconds", Help: "Time from a log entry's append to its application in the region.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}, []string{"region"}),
		retries:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_retries_total", Help: "Retries, by component and cause."}, []string{"component", "cause"}),
		checks:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_checks_total", Help: "Checks answered, by region and decision."}, []string{"region", "allowed"}),
		replicaBehind: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_replica_behind_total", Help: "Reads refused because the region had not reached the requested token in time."}, []string{"region"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_log_entries_refused_total",
			Help: "Log entries a region's projector refused (unsigned, forged, replayed); each stops the projector."}, []string{"region", "reason"}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "iam_writes_total", Help: "Management writes acknowledged."}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "iam_tokens_issued_total", Help: "Access tokens issued."}),
		passwords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_signin_password_verifications_total",
			Help: "argon2id verifications of sign-in passwords, against a user's hash or, for an unknown email, the dummy hash."}, []string{"against"}),
		hashInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "iam_argon2id_in_flight", Help: "argon2id hashes and verifications running now (at most Config.MaxConcurrentHashes)."}),
		hashes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "iam_argon2id_total", Help: "argon2id hashes and verifications started."}),
		hashesRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "iam_argon2id_refused_total",
			Help: "argon2id computations refused (503) because no slot freed within Config.HashWait."}),
	}
	reg.MustRegister(m.appliedSeq, m.headSeq, m.lagEvents, m.lagSeconds, m.healthy, m.propagation, m.retries,
		m.checks, m.replicaBehind, m.refused, m.writes, m.tokens, m.passwords, m.hashInFlight, m.hashes, m.hashesRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range regions {
		m.appliedSeq.WithLabelValues(r)
		m.headSeq.WithLabelValues(r)
		m.lagEvents.WithLabelValues(r)
		m.lagSeconds.WithLabelValues(r)
		m.healthy.WithLabelValues(r)
		m.propagation.WithLabelValues(r)
		m.checks.WithLabelValues(r, "true")
		m.checks.WithLabelValues(r, "false")
		m.replicaBehind.WithLabelValues(r)
		for _, reason := range RefusedReasons {
			m.refused.WithLabelValues(r, reason)
		}
	}
	m.passwords.WithLabelValues("user")
	m.passwords.WithLabelValues("dummy")
	for _, comp := range []string{"writer", "eventlog", "projector"} {
		for _, c := range RetryCauses {
			m.retries.WithLabelValues(comp, c)
		}
	}
	return m
}

// RefusedReasons are the reasons under which refused log entries are counted
// (projector.RefusedReason).
var RefusedReasons = []string{"unsigned", "forged", "replayed"}

// Refused counts one log entry refused by region's projector.
func (m *Metrics) Refused(region, reason string) {
	m.refused.WithLabelValues(region, reason).Inc()
}

// Retry counts one retry of component for cause.
func (m *Metrics) Retry(component, cause string) {
	m.retries.WithLabelValues(component, cause).Inc()
}

// passwordVerified counts one sign-in password verification against "user"
// or "dummy".
func (m *Metrics) passwordVerified(against string) {
	if m != nil {
		m.passwords.WithLabelValues(against).Inc()
	}
}

func (m *Metrics) hashStarted() {
	if m != nil {
		m.hashInFlight.Inc()
		m.hashes.Inc()
	}
}

func (m *Metrics) hashDone() {
	if m != nil {
		m.hashInFlight.Dec()
	}
}

func (m *Metrics) hashRefused() {
	if m != nil {
		m.hashesRefused.Inc()
	}
}

// ObservePropagation records one entry's append → applied delay in region.
func (m *Metrics) ObservePropagation(region string, seconds float64) {
	m.propagation.WithLabelValues(region).Observe(seconds)
}

// measured keeps a region's lag gauges current (lag.Config.Measured).
func (m *Metrics) measured(st lag.Status) {
	if m == nil {
		return
	}
	m.appliedSeq.WithLabelValues(st.Region).Set(float64(st.AppliedSeq))
	m.headSeq.WithLabelValues(st.Region).Set(float64(st.HeadSeq))
	m.lagEvents.WithLabelValues(st.Region).Set(float64(st.LagEvents))
	m.lagSeconds.WithLabelValues(st.Region).Set(st.LagSeconds)
	h := 0.0
	if st.Healthy {
		h = 1
	}
	m.healthy.WithLabelValues(st.Region).Set(h)
}
