package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/iam-project/iam"
)

// Scenario is one simulation run as data: the topology, the conditions on
// its links, a schedule of faults, a seeded workload, the clients' backoff
// policy and the SLOs the run must meet. Scenario files live in
// testdata/sim/*.json; LoadScenario reads one. Times in Faults and Bursts are
// offsets from the start of the measured run.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Seed makes the workload repeatable: the same seed gives every writer
	// the same sequence of intents and every checker the same sequence of
	// questions (timing, and so interleaving, is the machine's).
	Seed int64 `json:"seed"`
	// Duration of the measured run (load and faults). Default 10s.
	Duration Duration `json:"duration"`
	// Drain bounds the wait after the load stops for outstanding probes
	// (propagation, time-to-revoke) to finish. Default 10s.
	Drain Duration `json:"drain,omitempty"`

	Hub     HubSpec  `json:"hub"`
	Regions []string `json:"regions"`
	// Link is the condition of every hub↔region link from the start;
	// Links overrides it per region.
	Link  LinkSpec            `json:"link"`
	Links map[string]LinkSpec `json:"links,omitempty"`

	Faults   []Fault       `json:"faults,omitempty"`
	Workload Workload      `json:"workload"`
	Backoff  BackoffPolicy `json:"backoff"`
	SLO      SLO           `json:"slo"`

	// Short holds overrides (any fields of a Scenario) that make the CI
	// version of the scenario; see Scenario.Shortened.
	Short json.RawMessage `json:"short,omitempty"`
}

// HubSpec shapes the hub.
type HubSpec struct {
	// Nodes in the hub's JetStream cluster: 1, or 3 (stream replicas 3).
	// Default 1.
	Nodes int `json:"nodes"`
	// Fsync makes every hub node fsync each write (production). Default
	// off: propagation then measures the design, not this disk.
	Fsync bool `json:"fsync,omitempty"`
	// Heartbeat is the hub's idle heartbeat interval. Default 1s.
	Heartbeat Duration `json:"heartbeat,omitempty"`
}

// LinkSpec is a steady condition of a link, applied in both directions.
type LinkSpec struct {
	Latency Duration `json:"latency,omitempty"`
	// Jitter: each chunk's delay is drawn uniformly from latency ± jitter.
	Jitter Duration `json:"jitter,omitempty"`
	// BandwidthKBps caps the link's rate in KB/s (0: unlimited).
	BandwidthKBps int64 `json:"bandwidthKBps,omitempty"`
}

// P99 is the link's one-way p99 delay as configured: latency + 0.98 ×
// jitter for the uniform jitter of the proxy.
func (l LinkSpec) P99() time.Duration {
	return l.Latency.D() + time.Duration(0.98*float64(l.Jitter.D()))
}

// Kinds of Fault.
const (
	// FaultPartition cuts the regions' links at At and heals them after For.
	FaultPartition = "partition"
	// FaultFlap cuts the links for Down at the start of every Period, for For.
	FaultFlap = "flap"
	// FaultLatency sets latency ± jitter for For (0: to the end), then
	// restores the link's steady condition.
	FaultLatency = "latency"
	// FaultBandwidth caps the links' rate for For, then restores it.
	FaultBandwidth = "bandwidth"
	// FaultReset drops every connection on the links once, at At: the
	// peers see a reset and reconnect at once.
	FaultReset = "reset"
	// FaultKillHubNode shuts one hub node down at At for good. Node is
	// "leader" (the stream's leader at that moment, default) or an index.
	FaultKillHubNode = "kill-hub-node"
)

var faultKinds = []string{FaultPartition, FaultFlap, FaultLatency, FaultBandwidth, FaultReset, FaultKillHubNode}

// Fault is one entry of the fault schedule.
type Fault struct {
	Kind string   `json:"kind"`
	At   Duration `json:"at"`
	For  Duration `json:"for,omitempty"`
	// Regions whose links the fault hits; empty: every region.
	Regions []string `json:"regions,omitempty"`

	Latency       Duration `json:"latency,omitempty"`
	Jitter        Duration `json:"jitter,omitempty"`
	BandwidthKBps int64    `json:"bandwidthKBps,omitempty"`
	Period        Duration `json:"period,omitempty"`
	Down          Duration `json:"down,omitempty"`
	Node          string   `json:"node,omitempty"`
}

// Disruptive reports whether the fault interrupts links or the hub (as
// opposed to slowing them): time-to-revoke SLOs exclude revokes whose
// measurement overlaps a disruptive fault, and report them apart.
func (f Fault) Disruptive() bool {
	switch f.Kind {
	case FaultPartition, FaultFlap, FaultReset, FaultKillHubNode:
		return true
	}
	return false
}

// Write kinds of the workload.
const (
	WriteGrant        = "grant"         // attach a resource's policy to a user
	WriteRevoke       = "revoke"        // detach it
	WriteAddMember    = "add-member"    // add a user to a group
	WriteRemoveMember = "remove-member" // remove it
	WriteDeactivate   = "deactivate"    // PATCH a user's status to deactivated
	WriteActivate     = "activate"      // and back to active
)

// WriteKinds lists every write kind in a stable order.
var WriteKinds = []string{WriteGrant, WriteRevoke, WriteAddMember, WriteRemoveMember, WriteDeactivate, WriteActivate}

// Modes lists the consistency modes in a stable order.
var Modes = []string{iam.MinimizeLatency, iam.AtLeastAsFresh, iam.FullyConsistent}

// Workload is what the clients in every region do.
type Workload struct {
	// UsersPerRegion users are created at setup for each region's writers;
	// a user is written by one writer only, so each writer knows its users'
	// state exactly. Default 24.
	UsersPerRegion int `json:"usersPerRegion,omitempty"`
	// Resources, each with one policy allowing "read" on it. Default 4.
	Resources int `json:"resources,omitempty"`
	// Groups, group i holding the policy of resource i mod Resources.
	// Default 4.
	Groups int `json:"groups,omitempty"`

	// WritesPerSecond per region (0: no writes), by WritersPerRegion
	// concurrent writers (default 2). MaxWrites bounds the run's writes
	// (0: no bound but time).
	WritesPerSecond  float64 `json:"writesPerSecond"`
	WritersPerRegion int     `json:"writersPerRegion,omitempty"`
	MaxWrites        int     `json:"maxWrites,omitempty"`
	// Mix weighs the write kinds (WriteKinds); a kind that does not apply
	// to the chosen user at that moment is skipped for one that does.
	// Default: all equal.
	Mix map[string]float64 `json:"mix,omitempty"`
	// Bursts raise the write rate for a while.
	Bursts []Burst `json:"bursts,omitempty"`

	// Checks per second per region, by consistency mode (Modes), each
	// mode by CheckersPerRegion concurrent checkers (default 2).
	Checks            map[string]float64 `json:"checks,omitempty"`
	CheckersPerRegion int                `json:"checkersPerRegion,omitempty"`
	MaxChecks         int                `json:"maxChecks,omitempty"`
	// CheckWait is the waitMs of at_least_as_fresh and fully_consistent
	// checks. Default 500ms.
	CheckWait Duration `json:"checkWait,omitempty"`

	// ProbeInterval spaces the minimize_latency probes that measure
	// time-to-revoke (default 1ms); ProbeTimeout bounds one (default 60s).
	ProbeInterval Duration `json:"probeInterval,omitempty"`
	ProbeTimeout  Duration `json:"probeTimeout,omitempty"`
}

// Burst is a window of a higher write rate.
type Burst struct {
	At              Duration `json:"at"`
	For             Duration `json:"for"`
	WritesPerSecond float64  `json:"writesPerSecond"`
}

// SLO holds a scenario's targets. Whatever the SLO says, every run must
// show zero stale answers under at_least_as_fresh and fully_consistent,
// zero answers that match no state of the log, zero lost and zero
// duplicated events, and regions that converge to one digest.
type SLO struct {
	// TimeToRevokeP99 bounds the p99 time-to-revoke of revokes whose
	// measurement overlaps no disruptive fault. TimeToRevokeP99OverLink
	// bounds it by the worst link's configured one-way p99 plus this.
	TimeToRevokeP99         Duration `json:"timeToRevokeP99,omitempty"`
	TimeToRevokeP99OverLink Duration `json:"timeToRevokeP99OverLink,omitempty"`
	// PropagationP99 bounds, per region, the p99 delay from a write's
	// acknowledgement to the region having applied it, over writes whose
	// propagation overlaps no disruptive fault. …OverLink as above.
	PropagationP99         Duration `json:"propagationP99,omitempty"`
	PropagationP99OverLink Duration `json:"propagationP99OverLink,omitempty"`
	// CurrentAfterHeal bounds the time from a link's healing (end of a
	// partition, of each flap's cut, or the end of the run) until its
	// region has applied every write acknowledged before it and up to a
	// second after it.
	CurrentAfterHeal Duration `json:"currentAfterHeal,omitempty"`
	// WritesResumeAfterHubLoss bounds the time from losing a hub node
	// until a write sent after it is acknowledged; CurrentAfterHubLoss the
	// time until every region has applied every write acknowledged up to
	// a second after it.
	WritesResumeAfterHubLoss Duration `json:"writesResumeAfterHubLoss,omitempty"`
	CurrentAfterHubLoss      Duration `json:"currentAfterHubLoss,omitempty"`
	// MaxStaleMinimizeLatency bounds the share (0..1) of the workload's
	// minimize_latency answers that disagree with the latest write
	// acknowledged before the check was sent. Nil: no bound.
	MaxStaleMinimizeLatency *float64 `json:"maxStaleMinimizeLatency,omitempty"`
	// MinWrites, MinRevokes and MinChecks make sure the run did something.
	MinWrites  int `json:"minWrites,omitempty"`
	MinRevokes int `json:"minRevokes,omitempty"`
	MinChecks  int `json:"minChecks,omitempty"`
}

// LoadScenario reads a scenario file, applies defaults and validates it.
// With short, the file's "short" overrides are applied first.
func LoadScenario(path string, short bool) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, err
	}
	s, err := ParseScenario(data)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	if short {
		if s, err = s.Shortened(); err != nil {
			return Scenario{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return s, nil
}

// ParseScenario decodes a scenario (unknown fields are errors), applies
// defaults and validates it.
func ParseScenario(data []byte) (Scenario, error) {
	var s Scenario
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Scenario{}, fmt.Errorf("scenario: %w", err)
	}
	s = s.WithDefaults()
	return s, s.Validate()
}

// Shortened returns the scenario with its Short overrides applied (the CI
// version), or the scenario itself when it has none.
func (s Scenario) Shortened() (Scenario, error) {
	if len(s.Short) == 0 {
		return s, nil
	}
	// A deep copy first: decoding into maps merges into the original's.
	data, err := json.Marshal(s)
	if err != nil {
		return Scenario{}, err
	}
	var out Scenario
	if err := json.Unmarshal(data, &out); err != nil {
		return Scenario{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(s.Short))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return Scenario{}, fmt.Errorf("short: %w", err)
	}
	out.Short = nil
	out = out.WithDefaults()
	return out, out.Validate()
}

// WithDefaults fills unset fields with their defaults.
func (s Scenario) WithDefaults() Scenario {
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&s.Duration, 10*time.Second)
	def(&s.Drain, 10*time.Second)
	defInt(&s.Hub.Nodes, 1)
	def(&s.Hub.Heartbeat, time.Second)
	w := &s.Workload
	defInt(&w.UsersPerRegion, 24)
	defInt(&w.Resources, 4)
	defInt(&w.Groups, 4)
	defInt(&w.WritersPerRegion, 2)
	defInt(&w.CheckersPerRegion, 2)
	def(&w.CheckWait, 500*time.Millisecond)
	def(&w.ProbeInterval, time.Millisecond)
	def(&w.ProbeTimeout, time.Minute)
	if len(w.Mix) == 0 {
		w.Mix = map[string]float64{}
		for _, k := range WriteKinds {
			w.Mix[k] = 1
		}
	}
	s.Backoff = s.Backoff.WithDefaults()
	return s
}

// Validate reports the first problem with the scenario.
func (s Scenario) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Name == "" {
		bad("name is required")
	}
	if s.Duration <= 0 {
		bad("duration must be positive")
	}
	if s.Hub.Nodes != 1 && s.Hub.Nodes != 3 {
		bad("hub.nodes: got %d, want 1 or 3", s.Hub.Nodes)
	}
	if len(s.Regions) == 0 {
		bad("regions: at least one is required")
	}
	seen := map[string]bool{}
	for _, r := range s.Regions {
		if !validName(r) || seen[r] || r == "hub" {
			bad("regions: %q is not a region name, or repeated", r)
		}
		seen[r] = true
	}
	for r := range s.Links {
		if !seen[r] {
			bad("links: %q is not one of the regions", r)
		}
	}
	for i, f := range s.Faults {
		where := fmt.Sprintf("faults[%d] (%s)", i, f.Kind)
		if !slices.Contains(faultKinds, f.Kind) {
			bad("%s: kind must be one of %v", where, faultKinds)
		}
		if f.At < 0 || f.At > s.Duration || f.For < 0 {
			bad("%s: at must lie within the duration and for must not be negative", where)
		}
		for _, r := range f.Regions {
			if !seen[r] {
				bad("%s: region %q is not one of the regions", where, r)
			}
		}
		switch f.Kind {
		case FaultPartition:
			if f.For <= 0 {
				bad("%s: for must be positive", where)
			}
		case FaultFlap:
			if f.For <= 0 || f.Period <= 0 || f.Down <= 0 || f.Down >= f.Period {
				bad("%s: for and period must be positive, 0 < down < period", where)
			}
		case FaultBandwidth:
			if f.BandwidthKBps <= 0 {
				bad("%s: bandwidthKBps must be positive", where)
			}
		case FaultLatency:
			if f.Latency < 0 || f.Jitter < 0 || f.Jitter > f.Latency {
				bad("%s: want 0 <= jitter <= latency", where)
			}
		case FaultKillHubNode:
			if s.Hub.Nodes < 3 {
				bad("%s: needs a hub of 3 nodes", where)
			}
			if f.Node != "" && f.Node != "leader" {
				if n, err := strconv.Atoi(f.Node); err != nil || n < 0 || n >= s.Hub.Nodes {
					bad("%s: node must be \"leader\" or an index below %d", where, s.Hub.Nodes)
				}
			}
		}
	}
	w := s.Workload
	if w.UsersPerRegion < w.WritersPerRegion || w.Resources < 1 || w.Groups < 0 {
		bad("workload: want usersPerRegion >= writersPerRegion, resources >= 1, groups >= 0")
	}
	if w.WritesPerSecond < 0 || w.MaxWrites < 0 || w.MaxChecks < 0 {
		bad("workload: rates and bounds must not be negative")
	}
	for k, v := range w.Mix {
		if !slices.Contains(WriteKinds, k) || v < 0 {
			bad("workload.mix: %q is not one of %v, or its weight is negative", k, WriteKinds)
		}
	}
	for m, v := range w.Checks {
		if !slices.Contains(Modes, m) || v < 0 {
			bad("workload.checks: %q is not one of %v, or its rate is negative", m, Modes)
		}
	}
	for i, b := range w.Bursts {
		if b.At < 0 || b.For <= 0 || b.WritesPerSecond <= 0 {
			bad("workload.bursts[%d]: want at >= 0, for > 0, writesPerSecond > 0", i)
		}
	}
	if err := s.Backoff.Validate(); err != nil {
		bad("backoff: %v", err)
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// LinkOf is the steady condition of region's link.
func (s Scenario) LinkOf(region string) LinkSpec {
	if l, ok := s.Links[region]; ok {
		return l
	}
	return s.Link
}

// WorstLinkP99 is the largest configured one-way p99 delay of any link,
// steady or during a latency fault.
func (s Scenario) WorstLinkP99() time.Duration {
	var worst time.Duration
	for _, r := range s.Regions {
		worst = max(worst, s.LinkOf(r).P99())
	}
	for _, f := range s.Faults {
		if f.Kind == FaultLatency {
			worst = max(worst, LinkSpec{Latency: f.Latency, Jitter: f.Jitter}.P99())
		}
	}
	return worst
}

// faultRegions are the regions a fault hits.
func (s Scenario) faultRegions(f Fault) []string {
	if len(f.Regions) == 0 {
		return s.Regions
	}
	return f.Regions
}

// Scaled returns the SLO with its latency targets (time-to-revoke and
// propagation, absolute or over the link) multiplied by latency and its
// recovery targets (after a heal, after a hub node's loss) by recovery.
// A factor of 0 drops those targets. Tests use it where the machine, not
// the design, sets the figures (the race detector slows this code 10–15×).
func (o SLO) Scaled(latency, recovery float64) SLO {
	scale := func(d *Duration, f float64) { *d = Duration(float64(*d) * f) }
	scale(&o.TimeToRevokeP99, latency)
	scale(&o.TimeToRevokeP99OverLink, latency)
	scale(&o.PropagationP99, latency)
	scale(&o.PropagationP99OverLink, latency)
	scale(&o.CurrentAfterHeal, recovery)
	scale(&o.WritesResumeAfterHubLoss, recovery)
	scale(&o.CurrentAfterHubLoss, recovery)
	return o
}
