package sim

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/iam-project/iam/api/client"
)

// writeRec is one workload write as the client saw it.
type writeRec struct {
	ID       int
	Region   string // the writer's home region
	Kind     string
	App      string
	Resource int // for grant/revoke; the group's resource for membership; -1 otherwise
	Group    int // for membership writes, else -1
	Key      string
	Sent     time.Time
	Acked    time.Time // zero when the write failed
	Seq      uint64
	Endpoint string
	Replayed bool
	Err      string

	// applied[region] is when the region was seen to have applied it.
	applied map[string]time.Time
}

// answerRec is one answer to a check.
type answerRec struct {
	Source      string // "workload", "probe" (time-to-revoke), "waiter" (propagation), "heal"
	Home        string // the region asked first
	Region      string // the region that answered
	Mode        string
	App         string
	Resource    int
	ReqSeq      uint64 // at_least_as_fresh token asked for
	AckedAtSend uint64 // the latest acknowledged write when sent
	Sent, Recv  time.Time
	// Status 200: Allowed at Seq. Status 401 (the subject's token refused:
	// the identity is not active): a denial at an unknown position.
	Status  int
	Allowed bool
	Seq     uint64
}

// RetryRecord is one retry or failover of a workload client, as the
// report's timeline keeps it.
type RetryRecord struct {
	At         Duration `json:"at"` // since the run's start
	Region     string   `json:"region"`
	Source     string   `json:"source"` // "write" or "check"
	Op         string   `json:"op"`
	Cause      string   `json:"cause"`
	Failover   bool     `json:"failover"`
	Endpoint   string   `json:"endpoint"`
	Next       string   `json:"next"`
	Attempt    int      `json:"attempt"`
	Delay      Duration `json:"delay"`
	RetryAfter Duration `json:"retryAfter,omitempty"`
}

// revokeRec is one revoke whose time-to-revoke is measured.
type revokeRec struct {
	Write    *writeRec
	App      string
	Resource int
	// denied[region] is when the region was first seen to deny.
	denied map[string]time.Time
	done   bool
}

// healRec is a link healing (or a hub node lost), and when its region
// was current again.
type healRec struct {
	Region  string
	Kind    string
	At      time.Time
	Seq     uint64 // the latest acknowledged write at At
	Current time.Time
}

// FaultWindow is a fault as it was applied, in offsets from the start.
type FaultWindow struct {
	Kind    string   `json:"kind"`
	Regions []string `json:"regions,omitempty"`
	Node    string   `json:"node,omitempty"`
	Start   Duration `json:"start"`
	End     Duration `json:"end"`
	// Recovered (disruptive faults, in the report) is when every region
	// it hit had applied every write acknowledged up to a second after
	// its end.
	Recovered Duration `json:"recovered,omitempty"`
	Note      string   `json:"note,omitempty"`
	// toLoadEnd: the fault lasts until the load ends (End is the
	// scenario's duration until then).
	toLoadEnd bool
}

// lagSample is one region's own row of GET /v1/replicas.
type lagSample struct {
	Region     string
	At         time.Time
	LagSeconds float64
	LagEvents  uint64
	Healthy    bool
}

// recorder collects a run's observations; it is safe for concurrent use.
type recorder struct {
	start   time.Time
	metrics *Metrics

	ackMax atomic.Uint64

	mu      sync.Mutex
	nextID  int
	writes  []*writeRec
	answers []answerRec
	errs    map[string]map[string]int // mode → error code → count
	retries []RetryRecord
	revokes []*revokeRec
	heals   []*healRec
	faults  []FaultWindow
	lag     []lagSample
	sent    map[string]int // mode → checks sent by the workload
	// gaveUp counts the workload's calls that ended on a retryable error.
	gaveUp map[string]int
}

func newRecorder(m *Metrics) *recorder {
	return &recorder{metrics: m, errs: map[string]map[string]int{}, sent: map[string]int{}, gaveUp: map[string]int{}}
}

// reached reports whether the run has done the SLO's minimum amounts of
// work so far, counted as the report counts them.
func (r *recorder) reached(slo SLO) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	acked, _ := r.writesLocked()
	revoked := 0
	for _, v := range r.revokes {
		if v.done {
			revoked++
		}
	}
	answered := 0
	for _, a := range r.answers {
		if a.Source == "workload" {
			answered++
		}
	}
	return acked >= slo.MinWrites && revoked >= slo.MinRevokes && answered >= slo.MinChecks
}

// writesLocked counts the writes acknowledged and those that failed so
// far; r.mu is held.
func (r *recorder) writesLocked() (acked, failed int) {
	for _, w := range r.writes {
		if !w.Acked.IsZero() {
			acked++
		} else if w.Err != "" {
			failed++
		}
	}
	return acked, failed
}

func (r *recorder) since(t time.Time) Duration { return Duration(t.Sub(r.start)) }

func (r *recorder) newWrite(w *writeRec) *writeRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	w.ID = r.nextID
	w.applied = map[string]time.Time{}
	r.writes = append(r.writes, w)
	return w
}

// acked records a write's acknowledgement.
func (r *recorder) acked(w *writeRec, seq uint64, at time.Time, endpoint string, replayed bool) {
	r.mu.Lock()
	w.Seq, w.Acked, w.Endpoint, w.Replayed = seq, at, endpoint, replayed
	r.mu.Unlock()
	for {
		cur := r.ackMax.Load()
		if seq <= cur || r.ackMax.CompareAndSwap(cur, seq) {
			return
		}
	}
}

func (r *recorder) failed(w *writeRec, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.Err = err.Error()
}

func (r *recorder) answer(a answerRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers = append(r.answers, a)
}

func (r *recorder) checkSent(mode string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent[mode]++
}

func (r *recorder) checkError(mode, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs[mode] == nil {
		r.errs[mode] = map[string]int{}
	}
	r.errs[mode][code]++
}

func (r *recorder) gaveUpCall(source string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaveUp[source]++
}

// retry records a client retry: in the metrics and in the timeline.
func (r *recorder) retry(region, source string, ev client.RetryEvent) {
	kind := "retry"
	if ev.Failover {
		kind = "failover"
	}
	r.metrics.Retries.WithLabelValues(region, source, string(ev.Cause), kind).Inc()
	r.metrics.BackoffDelay.WithLabelValues(string(ev.Cause)).Observe(ev.Delay.Seconds())
	rec := RetryRecord{At: r.since(time.Now()), Region: region, Source: source, Op: ev.Op, Cause: string(ev.Cause),
		Failover: ev.Failover, Endpoint: ev.Endpoint, Next: ev.Next, Attempt: ev.Attempt,
		Delay: Duration(ev.Delay), RetryAfter: Duration(ev.RetryAfter)}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, rec)
}

// applied marks every write in ws with a sequence at most seq as applied
// in region at t (if not already known earlier).
func (r *recorder) applied(region string, ws []*writeRec, seq uint64, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range ws {
		if w.Seq <= seq {
			if _, ok := w.applied[region]; !ok {
				w.applied[region] = t
				r.metrics.Propagation.WithLabelValues(region).Observe(t.Sub(w.Acked).Seconds())
			}
		}
	}
}

func (r *recorder) newRevoke(v *revokeRec) {
	v.denied = map[string]time.Time{}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revokes = append(r.revokes, v)
}

func (r *recorder) denied(v *revokeRec, region string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v.denied[region] = t
}

func (r *recorder) revokeDone(v *revokeRec, regions int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v.done = len(v.denied) == regions
	if v.done {
		var last time.Time
		for _, t := range v.denied {
			if t.After(last) {
				last = t
			}
		}
		r.metrics.TimeToRevoke.Observe(last.Sub(v.Write.Acked).Seconds())
	}
}

func (r *recorder) fault(f FaultWindow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, f)
}

// faultsLasted ends every fault window that lasts until the load ends (a
// latency or bandwidth fault with no For) when the load really ended,
// which Config.ExtendLoad may put past the scenario's duration.
func (r *recorder) faultsLasted(end Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.faults {
		if r.faults[i].toLoadEnd {
			r.faults[i].End = max(end, r.faults[i].End)
		}
	}
}

func (r *recorder) heal(h *healRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heals = append(r.heals, h)
}

func (r *recorder) current(h *healRec, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h.Current = t
}

func (r *recorder) lagSample(s lagSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lag = append(r.lag, s)
}
