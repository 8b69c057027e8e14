package sim

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/client"
)

// Report is what a run measured, as written to report.json.
type Report struct {
	Scenario Scenario  `json:"scenario"`
	Started  time.Time `json:"started"`
	// Setup is the time to start the topology and create the universe;
	// Load how long the load ran (the scenario's duration, or longer when
	// Config.ExtendLoad waited for the minimums); Elapsed the measured run
	// with its drain.
	Setup   Duration `json:"setup"`
	Load    Duration `json:"load"`
	Elapsed Duration `json:"elapsed"`
	Regions []string `json:"regions"`
	// LinkP99 is the worst link's configured one-way p99 delay.
	LinkP99 Duration `json:"linkP99"`

	Writes WriteFigures             `json:"writes"`
	Checks map[string]*CheckFigures `json:"checks"` // by mode
	// ChecksByRegion: the workload's answers by the region that answered.
	ChecksByRegion map[string]map[string]*CheckFigures `json:"checksByRegion"`

	// Propagation by region over every acknowledged write; Steady over
	// those whose propagation overlapped no disruptive fault.
	Propagation       map[string]Dist `json:"propagation"`
	PropagationSteady map[string]Dist `json:"propagationSteady"`
	Unpropagated      map[string]int  `json:"unpropagated"` // never seen applied before the drain ended

	TimeToRevoke TTRFigures `json:"timeToRevoke"`

	Heals    []HealFigure  `json:"heals,omitempty"`
	HubKills []KillFigure  `json:"hubKills,omitempty"`
	Faults   []FaultWindow `json:"faults,omitempty"`

	Retries RetryFigures `json:"retries"`
	Events  eventsCheck  `json:"events"`

	Convergence Convergence `json:"convergence"`

	// Timelines, for the plots.
	Lag       map[string][]SeriesPoint `json:"lag"`       // measured: age of the oldest acknowledged write not applied
	ServerLag map[string][]SeriesPoint `json:"serverLag"` // lagSeconds of the region's own GET /v1/replicas row
	RetryLog  []RetryRecord            `json:"retryLog,omitempty"`

	// Violations describe up to 20 answers judged wrong or stale.
	Violations []string `json:"violations,omitempty"`

	SLOs  []SLOResult `json:"slos"`
	Pass  bool        `json:"pass"`
	Notes []string    `json:"notes,omitempty"`

	metrics *Metrics
	rec     *recorder
}

// WriteFigures counts the workload's writes.
type WriteFigures struct {
	Attempted int            `json:"attempted"`
	Acked     int            `json:"acknowledged"`
	Failed    int            `json:"failed"`
	Replayed  int            `json:"replayed"` // acknowledged as an idempotent replay of a retried attempt
	ByKind    map[string]int `json:"byKind"`
	Skipped   int64          `json:"skippedTicks"` // rate ticks with no app free to write
	PerSecond float64        `json:"perSecond"`
}

// CheckFigures judge one mode's answers against the log.
type CheckFigures struct {
	Sent     int `json:"sent,omitempty"`
	Answered int `json:"answered"`
	// Probed counts the measurement's own checks of this mode (propagation
	// waits, revoke probes), judged for Wrong and Stale only.
	Probed  int            `json:"probed,omitempty"`
	Denied  int            `json:"denied"`
	Refused int            `json:"refused401"` // the app's token refused: the app is deactivated
	Errors  map[string]int `json:"errors,omitempty"`
	// Wrong answers match no state of the log from their own token on.
	Wrong int `json:"wrong"`
	// Stale answers are older than the mode allows (at_least_as_fresh,
	// fully_consistent). StaleRefused counts 401s (the app's token refused
	// as deactivated) from a replica older than the mode allows: not an
	// answer, but not what the mode promises either (docs/simulation.md).
	Stale        int `json:"stale"`
	StaleRefused int `json:"staleRefused"`
	// Behind (minimize_latency): disagree with the latest write
	// acknowledged before the check was sent; BehindRate is its share.
	Behind     int     `json:"behind"`
	BehindRate float64 `json:"behindRate"`
	Latency    Dist    `json:"latency"`
	latencies  []time.Duration
}

// TTRFigures are the times-to-revoke.
type TTRFigures struct {
	All    Dist `json:"all"`
	Steady Dist `json:"steady"` // overlapping no disruptive fault
	// Disrupted counts revokes whose measurement overlapped a disruptive
	// fault; Incomplete those not denied everywhere before the drain ended.
	Disrupted  int             `json:"disrupted"`
	Incomplete int             `json:"incomplete"`
	PerRegion  map[string]Dist `json:"perRegion"`
}

// HealFigure is one link healing and how soon its region was current:
// the later of a check waiting for the latest write acknowledged before
// the heal, and the region having applied every write acknowledged up to
// a second after it.
type HealFigure struct {
	Region       string   `json:"region"`
	Kind         string   `json:"kind"`
	At           Duration `json:"at"`
	CurrentAfter Duration `json:"currentAfter"`
	Measured     bool     `json:"measured"`
}

// KillFigure is one hub node lost and how soon writes were acknowledged again.
type KillFigure struct {
	Node         string   `json:"node"`
	At           Duration `json:"at"`
	WritesResume Duration `json:"writesResumeAfter"`
	Resumed      bool     `json:"resumed"`
	// RegionsCurrent: how long after the loss each region had applied
	// every write acknowledged up to a second after it.
	RegionsCurrent map[string]Duration `json:"regionsCurrentAfter"`
}

// RetryFigures are the workload clients' retries and failovers.
type RetryFigures struct {
	Total     int                     `json:"total"`
	ByCause   map[string]*CauseFigure `json:"byCause"`
	GaveUp    map[string]int          `json:"gaveUp"`
	Timeline  []RetryBucket           `json:"timeline"`
	BucketLen Duration                `json:"bucket"`
}

// CauseFigure counts one cause's retries and the waits before them.
type CauseFigure struct {
	Retries   int  `json:"retries"`
	Failovers int  `json:"failovers"`
	Delay     Dist `json:"delay"`
	delays    []time.Duration
}

// RetryBucket counts retries (and failovers) by cause in one time bucket.
type RetryBucket struct {
	At        Duration       `json:"at"`
	ByCause   map[string]int `json:"byCause"`
	Failovers int            `json:"failovers"`
}

// SeriesPoint is one sample of a timeline.
type SeriesPoint struct {
	At    Duration `json:"at"`
	Value float64  `json:"value"`
}

// Convergence says whether the regions ended in the same state.
type Convergence struct {
	Converged bool   `json:"converged"`
	Position  uint64 `json:"position"`
	// Decisions: each region's answers to every (app, resource) question
	// at least as fresh as Position, hashed; they must be equal and match
	// the log.
	Decisions   map[string]string `json:"decisions"`
	DecisionsOK bool              `json:"decisionsMatchLog"`
	// ReadModel are the regions' read-model digests at ReadModelAt.
	ReadModel     map[string]string `json:"readModelDigests,omitempty"`
	ReadModelAt   uint64            `json:"readModelAt,omitempty"`
	ReadModelNote string            `json:"readModelNote,omitempty"`
	Err           string            `json:"error,omitempty"`
}

// SLOResult is one assertion of a run.
type SLOResult struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Got    string `json:"got"`
	OK     bool   `json:"ok"`
}

// analysis holds what analyze needs besides the recorder.
type analysis struct {
	s        Scenario
	rec      *recorder
	model    *model
	events   eventsCheck
	conv     Convergence
	end      time.Time // end of the measured load
	setup    time.Duration
	setupSeq uint64
	skipped  int64
	notes    []string
}

func analyze(a analysis) *Report {
	s, rec := a.s, a.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := &Report{Scenario: s, Started: rec.start, Setup: Duration(a.setup), Load: Duration(a.end.Sub(rec.start)), Elapsed: Duration(time.Since(rec.start)),
		Regions: s.Regions, LinkP99: Duration(s.WorstLinkP99()), Checks: map[string]*CheckFigures{},
		ChecksByRegion: map[string]map[string]*CheckFigures{}, Propagation: map[string]Dist{},
		PropagationSteady: map[string]Dist{}, Unpropagated: map[string]int{}, Lag: map[string][]SeriesPoint{},
		ServerLag: map[string][]SeriesPoint{}, Events: a.events, Convergence: a.conv, Notes: a.notes, metrics: rec.metrics, rec: rec}
	r.Faults = slices.Clone(rec.faults)
	sort.Slice(r.Faults, func(i, j int) bool { return r.Faults[i].Start < r.Faults[j].Start })
	// recovery is how long after e region took to apply every write
	// acknowledged up to e + 1s: a link that carries nothing for a while
	// after it heals (a consumer to re-create) shows here, and so does a
	// backlog. ok is false if one of them was never seen applied.
	recovery := func(region string, e time.Time) (time.Duration, bool) {
		var worst time.Duration
		for _, w := range rec.writes {
			if w.Acked.IsZero() || w.Acked.After(e.Add(time.Second)) {
				continue
			}
			t, ok := w.applied[region]
			if !ok {
				return 0, false
			}
			worst = max(worst, t.Sub(e))
		}
		return worst, true
	}
	// Disruptive faults, each extended by its regions' recovery: a write
	// or revoke overlapping one is not "steady".
	var disruptive []FaultWindow
	for i, f := range r.Faults {
		if !(Fault{Kind: f.Kind}).Disruptive() {
			continue
		}
		regions := f.Regions
		e := rec.start.Add(f.End.D())
		if f.Kind == FaultKillHubNode {
			regions, e = s.Regions, rec.start.Add(f.Start.D())
		}
		var ext time.Duration
		for _, region := range regions {
			d, ok := recovery(region, e)
			if !ok {
				d = time.Since(e)
			}
			ext = max(ext, d)
		}
		r.Faults[i].Recovered = Duration(e.Add(ext).Sub(rec.start))
		w := f
		w.End = r.Faults[i].Recovered
		disruptive = append(disruptive, w)
	}
	endOff := rec.since(time.Now())

	// Writes and propagation.
	r.Writes = WriteFigures{ByKind: map[string]int{}, Skipped: a.skipped}
	prop := map[string][]time.Duration{}
	steady := map[string][]time.Duration{}
	for _, w := range rec.writes {
		r.Writes.Attempted++
		if w.Acked.IsZero() {
			r.Writes.Failed++
			continue
		}
		r.Writes.Acked++
		r.Writes.ByKind[w.Kind]++
		if w.Replayed {
			r.Writes.Replayed++
		}
		ack := rec.since(w.Acked)
		for _, region := range s.Regions {
			t, ok := w.applied[region]
			if !ok {
				r.Unpropagated[region]++
				continue
			}
			d := t.Sub(w.Acked)
			prop[region] = append(prop[region], d)
			if !overlaps(disruptive, ack, rec.since(t)) {
				steady[region] = append(steady[region], d)
			}
		}
	}
	if d := a.end.Sub(rec.start).Seconds(); d > 0 {
		r.Writes.PerSecond = float64(r.Writes.Acked) / d
	}
	for _, region := range s.Regions {
		r.Propagation[region] = newDist(prop[region])
		r.PropagationSteady[region] = newDist(steady[region])
	}

	// Answers.
	for _, m := range Modes {
		r.Checks[m] = &CheckFigures{Sent: rec.sent[m], Errors: rec.errs[m]}
	}
	fig := func(region, mode string) *CheckFigures {
		if r.ChecksByRegion[region] == nil {
			r.ChecksByRegion[region] = map[string]*CheckFigures{}
		}
		f := r.ChecksByRegion[region][mode]
		if f == nil {
			f = &CheckFigures{}
			r.ChecksByRegion[region][mode] = f
		}
		return f
	}
	for _, an := range rec.answers {
		v := a.model.judge(an, a.setupSeq)
		if (v.Wrong || v.Stale || v.StaleRefusal) && len(r.Violations) < 20 {
			r.Violations = append(r.Violations, fmt.Sprintf(
				"%s %s check (wrong %t, stale %t, stale refusal %t) of app %s on resource %d asked %s, answered by %q: status %d allowed %t at %d (asked for %d; %d acknowledged when sent; log head %d when it arrived; sent %s, took %s)",
				an.Source, an.Mode, v.Wrong, v.Stale, v.StaleRefusal, an.App, an.Resource, an.Home, an.Region, an.Status, an.Allowed, an.Seq,
				an.ReqSeq, an.AckedAtSend, a.model.headAt(an.Recv), fmtD(rec.since(an.Sent)), fmtD(Duration(an.Recv.Sub(an.Sent)))))
		}
		if an.Source != "workload" {
			// The measurement's own checks are judged too: a wrong or
			// stale one counts under its mode, but not in the rates.
			f := r.Checks[an.Mode]
			f.Probed++
			f.count(v)
			continue
		}
		region := an.Region
		if region == "" {
			region = an.Home
		}
		for _, f := range []*CheckFigures{r.Checks[an.Mode], fig(region, an.Mode)} {
			f.Answered++
			if an.Status == 401 {
				f.Refused++
			} else if !an.Allowed {
				f.Denied++
			}
			f.count(v)
			if v.Behind {
				f.Behind++
			}
			f.latencies = append(f.latencies, an.Recv.Sub(an.Sent))
		}
	}
	finish := func(f *CheckFigures) {
		if f.Answered > 0 {
			f.BehindRate = float64(f.Behind) / float64(f.Answered)
		}
		f.Latency = newDist(f.latencies)
		f.Latency.CDF = nil
	}
	for _, f := range r.Checks {
		finish(f)
	}
	for _, byMode := range r.ChecksByRegion {
		for _, f := range byMode {
			finish(f)
		}
	}

	// Time-to-revoke.
	var all, st []time.Duration
	perRegion := map[string][]time.Duration{}
	for _, v := range rec.revokes {
		if !v.done {
			r.TimeToRevoke.Incomplete++
			continue
		}
		var last time.Time
		for region, t := range v.denied {
			perRegion[region] = append(perRegion[region], t.Sub(v.Write.Acked))
			if t.After(last) {
				last = t
			}
		}
		d := last.Sub(v.Write.Acked)
		all = append(all, d)
		if overlaps(disruptive, rec.since(v.Write.Acked), rec.since(last)) {
			r.TimeToRevoke.Disrupted++
		} else {
			st = append(st, d)
		}
	}
	r.TimeToRevoke.All, r.TimeToRevoke.Steady = newDist(all), newDist(st)
	r.TimeToRevoke.PerRegion = map[string]Dist{}
	for region, ds := range perRegion {
		d := newDist(ds)
		d.CDF = nil
		r.TimeToRevoke.PerRegion[region] = d
	}

	// Heals and hub node losses.
	for _, h := range rec.heals {
		hf := HealFigure{Region: h.Region, Kind: h.Kind, At: rec.since(h.At), Measured: !h.Current.IsZero()}
		if hf.Measured {
			hf.CurrentAfter = Duration(h.Current.Sub(h.At))
		}
		d, ok := recovery(h.Region, h.At)
		hf.Measured = hf.Measured && ok
		hf.CurrentAfter = max(hf.CurrentAfter, Duration(d))
		r.Heals = append(r.Heals, hf)
	}
	for _, f := range r.Faults {
		if f.Kind != FaultKillHubNode {
			continue
		}
		kf := KillFigure{Node: f.Node, At: f.Start, RegionsCurrent: map[string]Duration{}}
		at := rec.start.Add(f.Start.D())
		for _, region := range s.Regions {
			if d, ok := recovery(region, at); ok {
				kf.RegionsCurrent[region] = Duration(d)
			}
		}
		for _, w := range rec.writes {
			if !w.Acked.IsZero() && !w.Sent.Before(at) {
				if d := Duration(w.Acked.Sub(at)); !kf.Resumed || d < kf.WritesResume {
					kf.WritesResume, kf.Resumed = d, true
				}
			}
		}
		r.HubKills = append(r.HubKills, kf)
	}

	// Retries.
	const bucket = 250 * time.Millisecond
	r.Retries = RetryFigures{ByCause: map[string]*CauseFigure{}, GaveUp: rec.gaveUp, BucketLen: Duration(bucket)}
	for _, c := range client.Causes {
		r.Retries.ByCause[string(c)] = &CauseFigure{}
	}
	nb := int(endOff.D()/bucket) + 1
	r.Retries.Timeline = make([]RetryBucket, nb)
	for i := range r.Retries.Timeline {
		r.Retries.Timeline[i] = RetryBucket{At: Duration(time.Duration(i) * bucket), ByCause: map[string]int{}}
	}
	for _, ev := range rec.retries {
		r.Retries.Total++
		cf := r.Retries.ByCause[ev.Cause]
		if cf == nil {
			cf = &CauseFigure{}
			r.Retries.ByCause[ev.Cause] = cf
		}
		if ev.Failover {
			cf.Failovers++
		} else {
			cf.Retries++
		}
		cf.delays = append(cf.delays, ev.Delay.D())
		if i := int(ev.At.D() / bucket); i >= 0 && i < nb {
			r.Retries.Timeline[i].ByCause[ev.Cause]++
			if ev.Failover {
				r.Retries.Timeline[i].Failovers++
			}
		}
	}
	for _, cf := range r.Retries.ByCause {
		cf.Delay = newDist(cf.delays)
		cf.Delay.CDF = nil
	}
	r.RetryLog = slices.Clone(rec.retries)

	// Lag timelines.
	const step = 100 * time.Millisecond
	for _, region := range s.Regions {
		var pts []SeriesPoint
		for t := time.Duration(0); t <= endOff.D(); t += step {
			at := rec.start.Add(t)
			var lag time.Duration
			for _, w := range rec.writes {
				if w.Acked.IsZero() || w.Acked.After(at) {
					continue
				}
				if ap, ok := w.applied[region]; !ok || ap.After(at) {
					lag = max(lag, at.Sub(w.Acked))
				}
			}
			pts = append(pts, SeriesPoint{Duration(t), lag.Seconds()})
		}
		r.Lag[region] = pts
	}
	for _, l := range rec.lag {
		r.ServerLag[l.Region] = append(r.ServerLag[l.Region], SeriesPoint{rec.since(l.At), l.LagSeconds})
	}
	for _, pts := range r.ServerLag {
		sort.Slice(pts, func(i, j int) bool { return pts[i].At < pts[j].At })
	}

	r.SLOs = r.Evaluate(s.SLO)
	r.Pass = true
	for _, o := range r.SLOs {
		r.Pass = r.Pass && o.OK
	}
	return r
}

func fmtD(d Duration) string {
	v := d.D()
	switch {
	case v == 0:
		return "0"
	case v < time.Millisecond:
		return fmt.Sprintf("%.2fms", ms(d))
	case v < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", ms(d))
	case v < 10*time.Second:
		return fmt.Sprintf("%.0fms", ms(d))
	}
	return fmt.Sprintf("%.1fs", v.Seconds())
}

// Evaluate checks the invariants every run must hold and the targets of
// slo (the scenario's own, or a scaled copy) against the report's figures.
func (r *Report) Evaluate(slo SLO) []SLOResult {
	s := r.Scenario
	var out []SLOResult
	add := func(name, target, got string, ok bool) {
		out = append(out, SLOResult{name, target, got, ok})
	}
	zero := func(name string, n int) { add(name, "0", fmt.Sprint(n), n == 0) }
	zero("stale answers under at_least_as_fresh", r.Checks[iam.AtLeastAsFresh].Stale)
	zero("stale answers under fully_consistent", r.Checks[iam.FullyConsistent].Stale)
	wrong := 0
	for _, f := range r.Checks {
		wrong += f.Wrong
	}
	zero("answers matching no state of the log", wrong)
	zero("lost events", r.Events.Lost)
	zero("duplicated events", r.Events.Duplicated)
	add("regions converge", "same state", convergenceText(r.Convergence), r.Convergence.Converged)

	if slo.TimeToRevokeP99 > 0 || slo.TimeToRevokeP99OverLink > 0 {
		target := slo.TimeToRevokeP99
		desc := fmtD(target)
		if slo.TimeToRevokeP99OverLink > 0 {
			target = r.LinkP99 + slo.TimeToRevokeP99OverLink
			desc = fmt.Sprintf("link p99 %s + %s = %s", fmtD(r.LinkP99), fmtD(slo.TimeToRevokeP99OverLink), fmtD(target))
		}
		d := r.TimeToRevoke.Steady
		add("p99 time-to-revoke (steady)", "≤ "+desc, fmt.Sprintf("%s (n=%d)", fmtD(d.P99), d.N), d.N > 0 && d.P99 <= target)
	}
	if slo.PropagationP99 > 0 || slo.PropagationP99OverLink > 0 {
		target := slo.PropagationP99
		desc := fmtD(target)
		if slo.PropagationP99OverLink > 0 {
			target = r.LinkP99 + slo.PropagationP99OverLink
			desc = fmt.Sprintf("link p99 %s + %s = %s", fmtD(r.LinkP99), fmtD(slo.PropagationP99OverLink), fmtD(target))
		}
		for _, region := range s.Regions {
			d := r.PropagationSteady[region]
			add("p99 propagation (steady) to "+region, "≤ "+desc, fmt.Sprintf("%s (n=%d)", fmtD(d.P99), d.N), d.N > 0 && d.P99 <= target)
		}
	}
	if slo.CurrentAfterHeal > 0 {
		var worst Duration
		measured, n := true, 0
		for _, h := range r.Heals {
			if h.Kind == FaultReset {
				continue
			}
			n++
			measured = measured && h.Measured
			worst = max(worst, h.CurrentAfter)
		}
		got := fmt.Sprintf("worst %s over %d heals", fmtD(worst), n)
		if !measured {
			got += " (some never current)"
		}
		add("current after a heal", "≤ "+fmtD(slo.CurrentAfterHeal), got, n > 0 && measured && worst <= slo.CurrentAfterHeal)
	}
	if slo.MaxStaleMinimizeLatency != nil {
		f := r.Checks[iam.MinimizeLatency]
		add("minimize_latency answers behind the latest acknowledged write", fmt.Sprintf("≤ %.1f%%", 100**slo.MaxStaleMinimizeLatency),
			fmt.Sprintf("%.2f%% of %d", 100*f.BehindRate, f.Answered), f.BehindRate <= *slo.MaxStaleMinimizeLatency)
	}
	if slo.MinWrites > 0 {
		add("writes acknowledged", fmt.Sprintf("≥ %d", slo.MinWrites), fmt.Sprint(r.Writes.Acked), r.Writes.Acked >= slo.MinWrites)
	}
	if slo.MinRevokes > 0 {
		n := r.TimeToRevoke.All.N
		add("revokes measured", fmt.Sprintf("≥ %d", slo.MinRevokes), fmt.Sprint(n), n >= slo.MinRevokes)
	}
	if slo.MinChecks > 0 {
		n := 0
		for _, f := range r.Checks {
			n += f.Answered
		}
		add("checks answered", fmt.Sprintf("≥ %d", slo.MinChecks), fmt.Sprint(n), n >= slo.MinChecks)
	}
	for _, k := range r.HubKills {
		got := "never"
		if k.Resumed {
			got = fmtD(k.WritesResume)
		}
		target, ok := "resume", k.Resumed
		if slo.WritesResumeAfterHubLoss > 0 {
			target, ok = "≤ "+fmtD(slo.WritesResumeAfterHubLoss), ok && k.WritesResume <= slo.WritesResumeAfterHubLoss
		}
		add("writes acknowledged again after losing "+k.Node, target, got, ok)
		if slo.CurrentAfterHubLoss > 0 {
			var worst Duration
			all := len(k.RegionsCurrent) == len(s.Regions)
			for _, d := range k.RegionsCurrent {
				worst = max(worst, d)
			}
			got := "worst " + fmtD(worst)
			if !all {
				got = "a region never current"
			}
			add("regions current after losing "+k.Node, "≤ "+fmtD(slo.CurrentAfterHubLoss), got, all && worst <= slo.CurrentAfterHubLoss)
		}
	}
	return out
}

func convergenceText(c Convergence) string {
	switch {
	case c.Err != "":
		return c.Err
	case !c.Converged:
		return fmt.Sprintf("differ: decisions %v, read models %v", c.Decisions, c.ReadModel)
	}
	var d string
	for _, v := range c.Decisions {
		d = v
		break
	}
	out := fmt.Sprintf("decisions %s… at %d", short(d), c.Position)
	for _, v := range c.ReadModel {
		out += fmt.Sprintf(", read models %s… at %d", short(v), c.ReadModelAt)
		break
	}
	return out
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// WriteSummary prints the report as a table.
func (r *Report) WriteSummary(w io.Writer) {
	s := r.Scenario
	fmt.Fprintf(w, "\nscenario %s (seed %d): hub %d node(s), regions %s, %s measured (setup %s), worst link p99 %s\n",
		s.Name, s.Seed, s.Hub.Nodes, strings.Join(s.Regions, ","), fmtD(r.Load), fmtD(r.Setup), fmtD(r.LinkP99))
	fmt.Fprintf(w, "writes: %d acknowledged (%.0f/s), %d failed (%d landed anyway), %d replayed; lost %d, duplicated %d\n",
		r.Writes.Acked, r.Writes.PerSecond, r.Writes.Failed, r.Events.LandedUnacked, r.Writes.Replayed, r.Events.Lost, r.Events.Duplicated)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "region\tpropagation p50\tp99\tmax\tsteady p99\tunapplied\tML answers\tML behind\tALAF stale\tFC stale\tML p99 latency")
	for _, region := range s.Regions {
		p := r.Propagation[region]
		ml, alaf, fc := r.ChecksByRegion[region][iam.MinimizeLatency], r.ChecksByRegion[region][iam.AtLeastAsFresh], r.ChecksByRegion[region][iam.FullyConsistent]
		get := func(f *CheckFigures) *CheckFigures {
			if f == nil {
				return &CheckFigures{}
			}
			return f
		}
		ml, alaf, fc = get(ml), get(alaf), get(fc)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.2f%%\t%d/%d\t%d/%d\t%s\n", region, fmtD(p.P50), fmtD(p.P99), fmtD(p.Max),
			fmtD(r.PropagationSteady[region].P99), r.Unpropagated[region], ml.Answered, 100*ml.BehindRate, alaf.Stale, alaf.Answered, fc.Stale, fc.Answered, fmtD(ml.Latency.P99))
	}
	tw.Flush()
	t := r.TimeToRevoke
	fmt.Fprintf(w, "time-to-revoke: %d revokes, p50 %s p99 %s max %s; steady %d: p50 %s p99 %s; %d overlapped a fault; %d incomplete\n",
		t.All.N, fmtD(t.All.P50), fmtD(t.All.P99), fmtD(t.All.Max), t.Steady.N, fmtD(t.Steady.P50), fmtD(t.Steady.P99), t.Disrupted, t.Incomplete)
	for _, h := range r.Heals {
		cur := "never"
		if h.Measured {
			cur = fmtD(h.CurrentAfter)
		}
		fmt.Fprintf(w, "heal (%s) of %s at %s: current after %s\n", h.Kind, h.Region, fmtD(h.At), cur)
	}
	for _, k := range r.HubKills {
		var cur []string
		for _, region := range s.Regions {
			if d, ok := k.RegionsCurrent[region]; ok {
				cur = append(cur, region+" "+fmtD(d))
			} else {
				cur = append(cur, region+" never")
			}
		}
		fmt.Fprintf(w, "hub node %s lost at %s: writes acknowledged again after %s; regions current after: %s\n",
			k.Node, fmtD(k.At), fmtD(k.WritesResume), strings.Join(cur, ", "))
	}
	var causes []string
	for _, c := range client.Causes {
		cf := r.Retries.ByCause[string(c)]
		if cf.Retries+cf.Failovers > 0 {
			causes = append(causes, fmt.Sprintf("%s %d+%d failovers (wait p50 %s p99 %s)", c, cf.Retries, cf.Failovers, fmtD(cf.Delay.P50), fmtD(cf.Delay.P99)))
		}
	}
	if len(causes) == 0 {
		causes = []string{"none"}
	}
	fmt.Fprintf(w, "retries: %d: %s; calls given up: %v\n", r.Retries.Total, strings.Join(causes, "; "), r.Retries.GaveUp)
	if n := r.Checks[iam.AtLeastAsFresh].StaleRefused + r.Checks[iam.FullyConsistent].StaleRefused; n > 0 {
		fmt.Fprintf(w, "stale refusals: %d checks at at_least_as_fresh/fully_consistent were refused (401, app deactivated) by a replica older than the token asked for\n", n)
	}
	fmt.Fprintf(w, "convergence: %s\n", convergenceText(r.Convergence))
	if r.Convergence.ReadModelNote != "" {
		fmt.Fprintf(w, "convergence: %s\n", r.Convergence.ReadModelNote)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLO\ttarget\tgot\t")
	for _, o := range r.SLOs {
		v := "ok"
		if !o.OK {
			v = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Name, o.Target, o.Got, v)
	}
	tw.Flush()
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s: %s\n", s.Name, verdict)
}

// count adds an answer's verdict to the figures.
func (f *CheckFigures) count(v verdict) {
	if v.Wrong {
		f.Wrong++
	}
	if v.Stale {
		f.Stale++
	}
	if v.StaleRefusal {
		f.StaleRefused++
	}
}
