package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/client"
)

// Config is one simulation run.
type Config struct {
	Scenario Scenario
	// Dir holds the processes' data; empty: a temporary directory,
	// removed afterwards.
	Dir string
	// Progress receives a progress line while the run goes (nil: none).
	Progress io.Writer
	// Logger receives the processes' logs (nil: discarded).
	Logger *slog.Logger
	// ExtendLoad, when positive, keeps the load going past the scenario's
	// duration, by at most this much, until the SLO's minimum amounts of
	// work are reached: on a machine slowed down (the race detector beside
	// other tests) the closed-loop writers wait longer for each write, and
	// a run judged on too little work says nothing. The report's end says
	// how long the load really ran.
	ExtendLoad time.Duration
}

// DefaultConfig runs DefaultScenario.
func DefaultConfig() Config { return Config{Scenario: DefaultScenario()} }

// Validate checks the configuration.
func (c Config) Validate() error { return c.Scenario.Validate() }

// DefaultScenario is what iamsim runs with no arguments: about 15 s
// measured (under a minute in all) on three regions, one of them behind a
// 20 ms ± 5 ms link, another cut off for 3 s, with writes of every kind and
// checks in every mode.
func DefaultScenario() Scenario {
	quarter := 0.25
	s := Scenario{
		Name:        "default",
		Description: "Three regions: ap-south behind 20ms±5ms, us-east cut off from 5s to 8s; writes of every kind and checks in every mode from every region.",
		Seed:        1,
		Duration:    Duration(15 * time.Second),
		Drain:       Duration(5 * time.Second),
		Regions:     []string{"eu-west", "us-east", "ap-south"},
		Links:       map[string]LinkSpec{"ap-south": {Latency: Duration(20 * time.Millisecond), Jitter: Duration(5 * time.Millisecond)}},
		Faults: []Fault{
			{Kind: FaultPartition, At: Duration(5 * time.Second), For: Duration(3 * time.Second), Regions: []string{"us-east"}},
			{Kind: FaultReset, At: Duration(11 * time.Second), Regions: []string{"eu-west"}},
		},
		Workload: Workload{WritesPerSecond: 10, Checks: map[string]float64{iam.MinimizeLatency: 40, iam.AtLeastAsFresh: 15, iam.FullyConsistent: 5}},
		SLO: SLO{TimeToRevokeP99OverLink: Duration(10 * time.Millisecond), CurrentAfterHeal: Duration(2 * time.Second),
			MaxStaleMinimizeLatency: &quarter, MinWrites: 50, MinRevokes: 5, MinChecks: 500},
	}
	return s.WithDefaults()
}

// Run starts the scenario's topology, runs its workload under its faults,
// checks the outcome against the log and returns the report. An error
// means the run could not be made or measured; a run that misses its SLOs
// returns a report with Pass false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s := cfg.Scenario.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "iamsim-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format, args...)
		}
	}
	setupStart := time.Now()
	progress("[%s] starting hub (%d node(s)) and regions %s\n", s.Name, s.Hub.Nodes, strings.Join(s.Regions, ","))
	c, err := startCluster(ctx, s, dir, logger)
	if err != nil {
		return nil, err
	}
	defer c.close()
	p := newProber()
	defer p.close()
	tok, err := client.ClientCredentials(ctx, c.tokenURL, c.clientID, c.clientSecret, "", nil).Token()
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	adminToken := tok.AccessToken
	admin, err := client.New([]string{c.hubs[0].URL}, append(s.Backoff.ClientOptions(nil, nil), client.WithToken(adminToken))...)
	if err != nil {
		return nil, err
	}
	progress("[%s] creating %d apps, %d resources, %d groups\n", s.Name, len(s.Regions)*s.Workload.UsersPerRegion, s.Workload.Resources, s.Workload.Groups)
	u, err := setup(ctx, s, c, p, admin, c.tokenURL)
	if err != nil {
		return nil, err
	}
	metrics := NewMetrics(s.Regions)
	rec := newRecorder(metrics)
	wl, err := newWorkload(s, u, c, rec, p, adminToken)
	if err != nil {
		return nil, err
	}
	fr := newFaultRunner(s, c, rec, wl, logger)
	if err := fr.steady(); err != nil {
		return nil, err
	}
	setupTook := time.Since(setupStart)

	rec.start = time.Now()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	probeCtx, cancelProbe := context.WithCancel(runCtx)
	defer cancelProbe()
	for _, t := range wl.prop {
		t.ctx = probeCtx
	}
	loadCtx, cancelLoad := context.WithCancel(runCtx)
	defer cancelLoad()
	go func() {
		defer cancelLoad()
		endLoad(loadCtx, rec, s, cfg.ExtendLoad)
	}()
	var load, bg sync.WaitGroup
	wl.start(loadCtx, runCtx, &load)
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		fr.run(loadCtx, probeCtx)
	}()
	lagCtx, stopLag := context.WithCancel(runCtx)
	bg.Add(2)
	go func() {
		defer bg.Done()
		wl.sampleLag(lagCtx, 500*time.Millisecond)
	}()
	go func() {
		defer bg.Done()
		showProgress(lagCtx, cfg.Progress, s, rec, wl)
	}()

	<-loadCtx.Done()
	<-faultsDone
	load.Wait()
	end := time.Now()
	rec.faultsLasted(rec.since(end))
	fr.end(probeCtx)
	// Drain: the last writes' propagation, revokes still being probed,
	// heals still being watched.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = poll(probeCtx, 20*time.Millisecond, nil, func() error {
			for _, t := range wl.prop {
				if !t.idle() {
					return errNotYet
				}
			}
			return nil
		})
		wl.probes.Wait()
	}()
	select {
	case <-drained:
	case <-time.After(s.Drain.D()):
	case <-ctx.Done():
	}
	cancelProbe()
	<-drained
	for _, t := range wl.prop {
		t.wg.Wait()
	}
	stopLag()
	bg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	progress("\n[%s] load done; checking against the log\n", s.Name)

	// Verify against the log.
	final := rec.ackMax.Load()
	var notes []string
	for _, rn := range c.regions {
		if err := waitApplied(ctx, p, rn.URL, u.apps, u.resources[0], final, 30*time.Second); err != nil {
			notes = append(notes, fmt.Sprintf("region %s: %v", rn.Name, err))
		}
	}
	entries, err := readChanges(ctx, p, c.regions[0].URL, adminToken, final, time.Second, time.Minute)
	if err != nil {
		return nil, fmt.Errorf("read the log: %w", err)
	}
	var ids []string
	appSet := map[string]bool{}
	for _, a := range u.apps {
		ids = append(ids, a.id)
		appSet[a.id] = true
	}
	m := buildModel(entries, ids, u.resources)
	rec.mu.Lock()
	ec := checkEvents(entries, rec.writes, appSet, u.setupSeq)
	rec.mu.Unlock()
	var last uint64
	for _, e := range entries {
		last = max(last, e.Seq)
	}
	conv := converge(ctx, c, u, p, m, max(final, last), adminToken)
	notes = append(notes, c.notes...)
	notes = append(notes, fr.notes...)
	r := analyze(analysis{s: s, rec: rec, model: m, events: ec, conv: conv, end: end, setup: setupTook,
		setupSeq: u.setupSeq, skipped: wl.skipped.Load(), notes: notes})
	return r, nil
}

// endLoad returns when the load should stop: at the scenario's duration,
// or, within extend after it, once the SLO's minimums are met.
func endLoad(ctx context.Context, rec *recorder, s Scenario, extend time.Duration) {
	t := time.NewTimer(s.Duration.D())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	if extend <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, extend)
	defer cancel()
	_, _ = poll(ctx, 250*time.Millisecond, nil, func() error {
		if rec.reached(s.SLO) {
			return nil
		}
		return errNotYet
	})
}

// showProgress rewrites one line each half second.
func showProgress(ctx context.Context, w io.Writer, s Scenario, rec *recorder, wl *workload) {
	if w == nil {
		return
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := rec.since(time.Now())
		rec.mu.Lock()
		acked, failed := rec.writesLocked()
		checks := len(rec.answers)
		retries := len(rec.retries)
		revokes := len(rec.revokes)
		var active []string
		for _, f := range rec.faults {
			if f.Start <= now && (now <= f.End || f.Start == f.End && now-f.Start < Duration(time.Second)) {
				active = append(active, f.Kind+" "+strings.Join(f.Regions, ",")+f.Node)
			}
		}
		rec.mu.Unlock()
		fa := "none"
		if len(active) > 0 {
			fa = strings.Join(active, "; ")
		}
		fmt.Fprintf(w, "\r[%s] %5.1fs/%.0fs  writes %d ok %d failed  answers %d  revokes %d  retries %d  faults: %-30s",
			s.Name, now.D().Seconds(), s.Duration.D().Seconds(), acked, failed, checks, revokes, retries, fa)
	}
}

// converge asks every region every (app, resource) question at least as
// fresh as pos and compares the answers, across regions and with the log;
// where the daemon can say its read model's digest, it compares those too.
func converge(ctx context.Context, c *cluster, u *universe, p *prober, m *model, pos uint64, adminToken string) Convergence {
	conv := Convergence{Position: pos, Decisions: map[string]string{}, DecisionsOK: true}
	type q struct {
		a *app
		r int
	}
	var qs []q
	for _, a := range u.apps {
		for r := range u.resources {
			qs = append(qs, q{a, r})
		}
	}
	var errs []error
	for _, rn := range c.regions {
		lines := make([]string, len(qs))
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i, x := range qs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ans, err := p.check(ctx, rn.URL, x.a.token, u.resources[x.r], iam.AtLeastAsFresh, pos, 10*time.Second)
				mu.Lock()
				defer mu.Unlock()
				var got string
				want := "refused"
				if !m.inactiveWithin(x.a.id, pos, pos) && !m.deactivatedBy(x.a.id, pos) {
					want = fmt.Sprint(m.at(x.a.id, x.r, pos))
				}
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s: %w", rn.Name, err))
				case ans.Status == 401:
					got = "refused"
				case ans.Status == 200:
					got = fmt.Sprint(ans.Allowed)
				default:
					errs = append(errs, fmt.Errorf("%s: check answered %d %s", rn.Name, ans.Status, ans.Code))
				}
				if got != want {
					conv.DecisionsOK = false
				}
				lines[i] = fmt.Sprintf("%s|%d|%s", x.a.id, x.r, got)
			}()
		}
		wg.Wait()
		sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		conv.Decisions[rn.Name] = hex.EncodeToString(sum[:])
	}
	if len(errs) > 0 {
		conv.Err = errors.Join(errs...).Error()
		if len(conv.Err) > 300 {
			conv.Err = conv.Err[:300] + "…"
		}
	}
	same := func(m map[string]string) bool {
		var first string
		for _, v := range m {
			if first == "" {
				first = v
			} else if v != first {
				return false
			}
		}
		return true
	}
	conv.Converged = conv.Err == "" && conv.DecisionsOK && same(conv.Decisions)
	// Read-model digests at one position (GET /v1/replicas/{region}/digest
	// ?at=): the hub's heartbeats keep every region moving, so ask for a
	// position a little ahead of the furthest region, and further ahead
	// when a region has already passed it.
	var at uint64
	for _, rn := range c.regions {
		for _, a := range u.apps {
			ans, err := p.check(ctx, rn.URL, a.token, u.resources[0], iam.MinimizeLatency, 0, 0)
			if err == nil && ans.Status == 200 {
				at = max(at, ans.Seq)
				break
			}
		}
	}
	at = max(at, pos)
	var last error
	notServed := false
	// Up to 5 positions, each 2 further on (backoff/v4: no wait between
	// tries, the server waits for the position itself).
	_ = backoff.Retry(func() error {
		at += 2
		ds := map[string]string{}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var status []int
		for _, rn := range c.regions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, st, err := p.digest(ctx, rn.URL, adminToken, rn.Name, at, 10*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					last = err
				}
				status = append(status, st)
				if st == 200 {
					ds[rn.Name] = d
				}
			}()
		}
		wg.Wait()
		if slices.Contains(status, 404) {
			notServed = true
			return backoff.Permanent(errNotYet)
		}
		if len(ds) < len(c.regions) {
			if last == nil {
				last = fmt.Errorf("digest at %d: statuses %v", at, status)
			}
			return errNotYet
		}
		conv.ReadModel, conv.ReadModelAt = ds, at
		return nil
	}, backoff.WithContext(backoff.WithMaxRetries(&backoff.ZeroBackOff{}, 4), ctx))
	if notServed {
		conv.ReadModelNote = "read-model digests not compared: GET /v1/replicas/{region}/digest is not served (decisions compared instead)"
		return conv
	}
	if conv.ReadModel == nil {
		conv.Converged = false
		conv.ReadModelNote = fmt.Sprintf("no read-model digests at one position: %v", last)
	} else if !same(conv.ReadModel) {
		conv.Converged = false
	}
	return conv
}
