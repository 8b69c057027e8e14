package lag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// Defaults.
const (
	// DefaultHeartbeatInterval is the hub's heartbeat period assumed when
	// Config.HeartbeatInterval is zero.
	DefaultHeartbeatInterval = time.Second
	// PeerStaleAfter: a region whose status has not arrived for this long
	// is reported from what was last heard, as unhealthy.
	PeerStaleAfter = 3 * time.Second
	// HistoryLen is how many samples the history keeps: 10 minutes at one
	// sample a second.
	HistoryLen = 600
)

// Log is what the monitor reads of the log: its head and the append time
// of an entry (eventlog.Log).
type Log interface {
	// Head is the sequence of the log's last entry; unavailable when the
	// log cannot be reached.
	Head(ctx context.Context) (uint64, error)
	// Get returns the entry at seq; not_found when there is none.
	Get(ctx context.Context, seq uint64) (iam.LogEntry, error)
}

// Replica is what the monitor reads of a local region's replica
// (replica.Replica).
type Replica interface {
	Region() string
	// Applied is the sequence of the last applied entry.
	Applied() uint64
	// LastApplied returns the last applied position, the append time of
	// that entry and when it was applied.
	LastApplied() (replica.Position, time.Time, time.Time)
}

// Status is one region's lag (a row of GET /v1/replicas).
type Status struct {
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

// Sample is every region's status at one moment.
type Sample struct {
	At       time.Time
	Statuses []Status
}

// Config configures a Monitor. Zero fields take the defaults named on them.
type Config struct {
	// Log is the log measured against; nil: the log is unreachable.
	Log Log
	// Replicas are the local regions, in preference order.
	Replicas []Replica
	// HeartbeatInterval is the hub's heartbeat period (eventlog.Heartbeater),
	// which bounds the lag a region reports while it cannot reach the log.
	// Default DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// MaxLag, when positive, marks a region whose lag in seconds exceeds it
	// unhealthy.
	MaxLag time.Duration
	// Token formats a log sequence as a consistency token. Required.
	Token func(seq uint64) string
	// Publish, when set, is given every local region's status (JSON) after
	// each measurement, for the other processes, which hand it to Receive.
	Publish func(region string, data []byte)
	// Measured, when set, is called with each local region's status as it
	// is measured (metrics).
	Measured func(Status)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Monitor measures the local regions' lag once a second between Start and
// Stop (and on demand, Measure) and keeps the other regions' statuses. It
// is safe for concurrent use.
type Monitor struct {
	cfg      Config
	replicas map[string]Replica
	health   func(region string) error

	history history
	peers   peerBoard
	lastMu  sync.Mutex
	last    []Status // the newest measurement; nil before the first
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a monitor.
func New(cfg Config) *Monitor {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Monitor{cfg: cfg, replicas: map[string]Replica{}}
	for _, r := range cfg.Replicas {
		m.replicas[r.Region()] = r
	}
	return m
}

// SetHealth installs the projectors' health function (nil error when
// healthy). Call it before Start.
func (m *Monitor) SetHealth(h func(region string) error) { m.health = h }

// MaxLag is the configured threshold (0: none).
func (m *Monitor) MaxLag() time.Duration { return m.cfg.MaxLag }

// Start samples every region once a second until ctx ends or Stop.
func (m *Monitor) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			sts := m.Measure(ctx)
			now := m.cfg.Now()
			m.history.add(now, append(sts, m.Peers(ctx, now)...))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop stops the sampling and waits for it.
func (m *Monitor) Stop() {
	if m.cancel != nil {
		m.cancel()
		m.wg.Wait()
	}
}

// Measure computes every local region's status now and publishes it. Lag
// in seconds is the age of the oldest entry a region has not applied: the
// append time of applied+1.
func (m *Monitor) Measure(ctx context.Context) []Status {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	head, headErr := m.head(ctx)
	now := m.cfg.Now()
	out := make([]Status, 0, len(m.cfg.Replicas))
	for _, rep := range m.cfg.Replicas {
		region := rep.Region()
		applied := rep.Applied()
		st := Status{Region: region, AppliedSeq: applied, AppliedToken: m.cfg.Token(applied), Healthy: true}
		if headErr == nil {
			st.HeadSeq = max(head, applied)
			st.HeadToken = m.cfg.Token(st.HeadSeq)
			st.LagEvents = st.HeadSeq - applied
			if st.LagEvents > 0 {
				if e, err := m.cfg.Log.Get(ctx, applied+1); err == nil {
					st.LagSeconds = max(0, now.Sub(e.Time).Seconds())
				}
			}
		} else {
			st.Healthy, st.Error = false, "log unreachable: "+headErr.Error()
		}
		m.judge(&st, rep, now, headErr)
		if m.health != nil {
			if err := m.health(region); err != nil {
				st.Healthy, st.Error = false, err.Error()
			}
		}
		if m.cfg.Measured != nil {
			m.cfg.Measured(st)
		}
		out = append(out, st)
	}
	m.publish(out)
	m.lastMu.Lock()
	m.last = out
	m.lastMu.Unlock()
	return out
}

// Last returns the newest measurement (Start measures once a second,
// Measure on demand) without measuring: probes read it, so that they cost
// no log round trip. ok is false before the first measurement.
func (m *Monitor) Last() (sts []Status, ok bool) {
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	return append([]Status(nil), m.last...), m.last != nil
}

func (m *Monitor) head(ctx context.Context) (uint64, error) {
	if m.cfg.Log == nil {
		return 0, errors.New("no log")
	}
	return m.cfg.Log.Head(ctx)
}

// judge completes a local region's status. When the log (the hub) is
// unreachable the region cannot learn the head; the hub appends an entry
// at least every HeartbeatInterval while it is up, so the region is at
// least now − (append time of its last applied entry) − HeartbeatInterval
// behind, and that lower bound is what it reports. A region whose lag
// passes MaxLag is unhealthy.
func (m *Monitor) judge(st *Status, rep Replica, now time.Time, headErr error) {
	if headErr != nil {
		_, lastTime, _ := rep.LastApplied()
		st.HeadSeq, st.HeadToken = st.AppliedSeq, st.AppliedToken
		if !lastTime.IsZero() {
			st.LagSeconds = max(0, now.Sub(lastTime).Seconds()-m.cfg.HeartbeatInterval.Seconds())
		}
		// Serving reads from its own replica is what a cut-off region is
		// for: it stays healthy until the lag threshold says otherwise.
		st.Healthy, st.Error = true, "log unreachable (lag is a lower bound): "+headErr.Error()
	}
	if m.cfg.MaxLag > 0 && st.LagSeconds > m.cfg.MaxLag.Seconds() {
		st.Healthy = false
		msg := fmt.Sprintf("lag %.1fs is over the %s threshold", st.LagSeconds, m.cfg.MaxLag)
		if st.Error != "" {
			msg += "; " + st.Error
		}
		st.Error = msg
	}
}

// History returns the samples taken after t, oldest first.
func (m *Monitor) History(after time.Time) []Sample { return m.history.since(after) }

// peerStatus is what a process publishes about each of its regions.
type peerStatus struct {
	Status
	// AppliedTime is the append time of the region's last applied entry.
	AppliedTime time.Time `json:"appliedTime"`
	SentAt      time.Time `json:"sentAt"`
}

type peerEntry struct {
	st       peerStatus
	received time.Time
}

// peerBoard holds the last status heard from every other region.
type peerBoard struct {
	mu    sync.Mutex
	peers map[string]peerEntry
}

// publish sends the local regions' statuses to the other processes.
func (m *Monitor) publish(sts []Status) {
	if m.cfg.Publish == nil {
		return
	}
	now := m.cfg.Now()
	for _, st := range sts {
		rep := m.replicas[st.Region]
		if rep == nil {
			continue
		}
		_, lastTime, _ := rep.LastApplied()
		data, err := json.Marshal(peerStatus{Status: st, AppliedTime: lastTime, SentAt: now})
		if err == nil {
			m.cfg.Publish(st.Region, data)
		}
	}
}

// Receive takes a status published by another process. Statuses of
// regions this monitor measures itself are ignored.
func (m *Monitor) Receive(data []byte) {
	var st peerStatus
	if err := json.Unmarshal(data, &st); err != nil || st.Region == "" {
		return
	}
	if _, local := m.replicas[st.Region]; local {
		return
	}
	m.peers.mu.Lock()
	defer m.peers.mu.Unlock()
	if m.peers.peers == nil {
		m.peers.peers = map[string]peerEntry{}
	}
	m.peers.peers[st.Region] = peerEntry{st: st, received: m.cfg.Now()}
}

// Peers returns the other regions' statuses, sorted by region. A region
// not heard from for PeerStaleAfter is shown unhealthy with the lag it must
// have by now: it cannot have applied more than it last reported (its
// status and its log share the one link that has gone quiet).
func (m *Monitor) Peers(ctx context.Context, now time.Time) []Status {
	m.peers.mu.Lock()
	entries := make([]peerEntry, 0, len(m.peers.peers))
	for _, e := range m.peers.peers {
		entries = append(entries, e)
	}
	m.peers.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	head, headErr := m.head(hctx)
	cancel()
	out := make([]Status, 0, len(entries))
	for _, e := range entries {
		st := e.st.Status
		age := now.Sub(e.received)
		if age > PeerStaleAfter {
			st.Healthy = false
			st.Error = fmt.Sprintf("no status from region for %.0fs", age.Seconds())
			if headErr == nil && head > st.AppliedSeq {
				st.HeadSeq, st.HeadToken = head, m.cfg.Token(head)
				st.LagEvents = head - st.AppliedSeq
				lctx, cancel := context.WithTimeout(ctx, time.Second)
				if next, err := m.cfg.Log.Get(lctx, st.AppliedSeq+1); err == nil {
					st.LagSeconds = max(0, now.Sub(next.Time).Seconds())
				}
				cancel()
			} else if !e.st.AppliedTime.IsZero() {
				st.LagSeconds = max(st.LagSeconds, now.Sub(e.st.AppliedTime).Seconds()-m.cfg.HeartbeatInterval.Seconds())
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Region, b.Region) })
	return out
}

// history is a ring of the last HistoryLen samples; safe for concurrent
// use.
type history struct {
	mu   sync.Mutex
	ring []Sample
	next int
}

func (h *history) add(at time.Time, sts []Status) {
	sm := Sample{At: at, Statuses: slices.Clone(sts)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ring) < HistoryLen {
		h.ring = append(h.ring, sm)
		return
	}
	h.ring[h.next] = sm
	h.next = (h.next + 1) % HistoryLen
}

// since returns the samples taken after t, oldest first.
func (h *history) since(t time.Time) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Sample, 0, len(h.ring))
	for i := range h.ring {
		sm := h.ring[(h.next+i)%len(h.ring)]
		if sm.At.After(t) {
			out = append(out, sm)
		}
	}
	return out
}
