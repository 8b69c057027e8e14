package api

import (
	"context"
	"net/http"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica/lag"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	checkLatency  *prometheus.HistogramVec
	maxLag        prometheus.Gauge
	responses     *prometheus.CounterVec
	writeFailures *prometheus.CounterVec
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
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_retries_total", Help: "Retries, by component and cause."}, []string{"component", "cause"}),
		checks:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_checks_total", Help: "Checks answered, by region and decision."}, []string{"region", "allowed"}),
		checkLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "iam_check_duration_seconds", Help: "Time to answer a check request once its caller is authenticated (the wait its consistency mode asks for, then evaluation; an AuthZEN boxcar counts once), by region and consistency mode.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}, []string{"region", "mode"}),
		maxLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "iam_replica_max_lag_seconds",
			Help: "The lag past which a region is not ready (--max-lag); 0: no threshold. Alerts compare iam_replica_lag_seconds with it."}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_http_responses_total",
			Help: "HTTP answers, by route (the pattern it matched, \"\" for none) and status code."}, []string{"route", "code"}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iam_write_failures_total",
			Help: "Management writes not acknowledged, by error code (invalid_argument, permission_denied, conflict... are the caller's; internal and unavailable are the service's)."}, []string{"code"}),
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
		m.checks, m.checkLatency, m.maxLag, m.responses, m.writeFailures, m.replicaBehind, m.refused, m.writes, m.tokens, m.passwords, m.hashInFlight, m.hashes, m.hashesRefused,
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
		for _, mode := range checkModes {
			m.checkLatency.WithLabelValues(r, mode)
		}
		for _, reason := range RefusedReasons {
			m.refused.WithLabelValues(r, reason)
		}
	}
	for _, code := range writeFailureCodes {
		m.writeFailures.WithLabelValues(code)
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

// checkModes label check latencies, so that every mode's series exists
// before its first check.
var checkModes = []string{iam.MinimizeLatency, iam.AtLeastAsFresh, iam.FullyConsistent, iam.AtExactSnapshot}

// writeFailureCodes are the error codes a write can fail with.
var writeFailureCodes = []string{iam.EInvalid, iam.EPermissionDenied, iam.ENotFound, iam.EConflict,
	iam.ELimitExceeded, iam.ERateLimited, iam.EUnavailable, iam.EInternal}

// observeCheck records one answered check in region under mode, started at
// start.
func (m *Metrics) observeCheck(region, mode string, start time.Time) {
	if m != nil {
		m.checkLatency.WithLabelValues(region, mode).Observe(time.Since(start).Seconds())
	}
}

// writeDone counts one write, acknowledged (err nil) or failed with err's
// code.
func (m *Metrics) writeDone(err error) {
	switch {
	case m == nil:
	case err == nil:
		m.writes.Inc()
	default:
		m.writeFailures.WithLabelValues(iam.ErrorCode(err)).Inc()
	}
}

// setMaxLag exports the configured lag threshold.
func (m *Metrics) setMaxLag(d time.Duration) {
	if m != nil {
		m.maxLag.Set(d.Seconds())
	}
}

type routeKey struct{}

// instrument counts every answer of next by the route mux matched and the
// status (promhttp keeps the writer's Flusher, which the change feed
// needs). The route is looked up before next runs, as next may answer
// from a copy of the request.
func (m *Metrics) instrument(mux *http.ServeMux, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	counted := promhttp.InstrumentHandlerCounter(m.responses, next,
		promhttp.WithLabelFromCtx("route", func(ctx context.Context) string {
			route, _ := ctx.Value(routeKey{}).(string)
			return route
		}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, route := mux.Handler(r)
		counted(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
	})
}
