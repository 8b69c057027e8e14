package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/time/rate"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/client"
)

// workload drives the seeded writes and checks and the measurement's
// probes. Its goroutines are owned by run (one WaitGroup per kind).
type workload struct {
	s       Scenario
	u       *universe
	c       *cluster
	rec     *recorder
	prober  *prober
	regions map[string]*regionNode

	writeClients map[string]*client.Client // admin, endpoints home first
	checkClients map[string]*client.Client // the app's own token from ctx
	adminToken   string

	writes, checks atomic.Int64 // taken from the bounds
	skipped        atomic.Int64 // write ticks with no free app
	limiters       map[string]*rate.Limiter

	prop map[string]*propTracker

	probes sync.WaitGroup // revoke probes, heal watchers
}

type tokenKey struct{}

// endpoints lists the regions' URLs, home first, then the others in the
// scenario's order: the client fails over in that order.
func (wl *workload) endpoints(home string) []string {
	out := []string{wl.regions[home].URL}
	for _, r := range wl.s.Regions {
		if r != home {
			out = append(out, wl.regions[r].URL)
		}
	}
	return out
}

func newWorkload(s Scenario, u *universe, c *cluster, rec *recorder, p *prober, adminToken string) (*workload, error) {
	wl := &workload{s: s, u: u, c: c, rec: rec, prober: p, regions: map[string]*regionNode{},
		writeClients: map[string]*client.Client{}, checkClients: map[string]*client.Client{},
		adminToken: adminToken, limiters: map[string]*rate.Limiter{}, prop: map[string]*propTracker{}}
	for _, rn := range c.regions {
		wl.regions[rn.Name] = rn
	}
	for _, region := range s.Regions {
		opts := s.Backoff.ClientOptions(nil, nil)
		wc, err := client.New(wl.endpoints(region), append(opts, client.WithToken(adminToken),
			client.WithOnRetry(func(ev client.RetryEvent) { rec.retry(region, "write", ev) }))...)
		if err != nil {
			return nil, err
		}
		cc, err := client.New(wl.endpoints(region), append(opts,
			client.WithTokenFunc(func(ctx context.Context) (string, error) {
				if t, ok := ctx.Value(tokenKey{}).(string); ok {
					return t, nil
				}
				return "", errors.New("no app token in the context")
			}),
			client.WithOnRetry(func(ev client.RetryEvent) { rec.retry(region, "check", ev) }))...)
		if err != nil {
			return nil, err
		}
		wl.writeClients[region], wl.checkClients[region] = wc, cc
		wl.limiters[region] = rate.NewLimiter(rate.Limit(s.Workload.WritesPerSecond), 1)
		wl.prop[region] = &propTracker{wl: wl, region: region, max: 32}
	}
	return wl, nil
}

// start runs the writers and checkers until loadCtx ends or their bounds
// are reached; calls already made finish under runCtx. wg tracks them.
func (wl *workload) start(loadCtx, runCtx context.Context, wg *sync.WaitGroup) {
	w := wl.s.Workload
	for ri, region := range wl.s.Regions {
		apps := wl.u.byRegion[region]
		if w.WritesPerSecond > 0 || len(w.Bursts) > 0 {
			n := w.WritersPerRegion
			for k := range n {
				var mine []*app
				for i := k; i < len(apps); i += n {
					mine = append(mine, apps[i])
				}
				rng := rand.New(rand.NewPCG(uint64(wl.s.Seed), uint64(ri*1000+k)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					wl.writer(loadCtx, runCtx, region, mine, rng)
				}()
			}
		}
		for mi, mode := range Modes {
			perSec := w.Checks[mode]
			if perSec <= 0 {
				continue
			}
			lim := rate.NewLimiter(rate.Limit(perSec), 1)
			for k := range w.CheckersPerRegion {
				rng := rand.New(rand.NewPCG(uint64(wl.s.Seed), uint64(1_000_000+ri*1000+mi*100+k)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					wl.checker(loadCtx, runCtx, region, mode, lim, rng)
				}()
			}
		}
	}
	// Bursts change every region's write rate for a while.
	if len(w.Bursts) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wl.bursts(loadCtx)
		}()
	}
}

func (wl *workload) setRate(perSec float64) {
	for _, l := range wl.limiters {
		l.SetLimit(rate.Limit(perSec))
	}
}

func (wl *workload) bursts(ctx context.Context) {
	type change struct {
		at   time.Duration
		rate float64
	}
	var cs []change
	for _, b := range wl.s.Workload.Bursts {
		cs = append(cs, change{b.At.D(), b.WritesPerSecond}, change{b.At.D() + b.For.D(), wl.s.Workload.WritesPerSecond})
	}
	slices.SortStableFunc(cs, func(a, b change) int { return int(a.at - b.at) })
	for _, c := range cs {
		t := time.NewTimer(time.Until(wl.rec.start.Add(c.at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wl.setRate(c.rate)
	}
}

func (wl *workload) take(n *atomic.Int64, limit int) bool {
	return limit <= 0 || n.Add(1) <= int64(limit)
}

// writer owns apps: it writes one change at a time, at its region's rate,
// always one that really changes state (so that every acknowledged write
// is exactly one event in the log).
func (wl *workload) writer(loadCtx, runCtx context.Context, region string, apps []*app, rng *rand.Rand) {
	lim := wl.limiters[region]
	for {
		if err := lim.Wait(loadCtx); err != nil {
			return
		}
		if !wl.take(&wl.writes, wl.s.Workload.MaxWrites) {
			return
		}
		a, kind, target := wl.pick(rng, apps)
		if a == nil {
			wl.skipped.Add(1)
			continue
		}
		wl.write(runCtx, region, a, kind, target, rng)
	}
}

// pick chooses a free app and a write that applies to it.
func (wl *workload) pick(rng *rand.Rand, apps []*app) (*app, string, int) {
	var free []*app
	for _, a := range apps {
		if !a.retired && !a.probing.Load() {
			free = append(free, a)
		}
	}
	if len(free) == 0 {
		return nil, "", 0
	}
	a := free[rng.IntN(len(free))]
	R, G := len(wl.u.resources), len(wl.u.groups)
	var cands []string
	var weights []float64
	targets := map[string][]int{}
	for _, k := range WriteKinds {
		var ts []int
		switch k {
		case WriteGrant, WriteRevoke:
			for r := range R {
				if a.direct[r] == (k == WriteRevoke) {
					ts = append(ts, r)
				}
			}
		case WriteAddMember, WriteRemoveMember:
			for g := range G {
				if a.groups[g] == (k == WriteRemoveMember) {
					ts = append(ts, g)
				}
			}
		case WriteDeactivate, WriteActivate:
			if a.active == (k == WriteDeactivate) {
				ts = []int{-1}
			}
		}
		if wt := wl.s.Workload.Mix[k]; wt > 0 && len(ts) > 0 {
			cands, weights, targets[k] = append(cands, k), append(weights, wt), ts
		}
	}
	if len(cands) == 0 {
		return nil, "", 0
	}
	var total float64
	for _, w := range weights {
		total += w
	}
	x := rng.Float64() * total
	k := cands[len(cands)-1]
	for i, w := range weights {
		if x < w {
			k = cands[i]
			break
		}
		x -= w
	}
	ts := targets[k]
	return a, k, ts[rng.IntN(len(ts))]
}

// writeKey names the event a write must produce, as the log shows it.
func (wl *workload) writeKey(kind, appID string, target int) string {
	switch kind {
	case WriteGrant:
		return "PolicyAttached|" + wl.u.policies[target] + "|" + appID
	case WriteRevoke:
		return "PolicyDetached|" + wl.u.policies[target] + "|" + appID
	case WriteAddMember:
		return "MemberAdded|" + wl.u.groups[target] + "|" + appID
	case WriteRemoveMember:
		return "MemberRemoved|" + wl.u.groups[target] + "|" + appID
	case WriteDeactivate:
		return "IdentityStatusChanged|deactivated|" + appID
	case WriteActivate:
		return "IdentityStatusChanged|active|" + appID
	}
	return ""
}

// eventKey is writeKey's counterpart for an event of the log ("" for an
// event no workload write makes).
func eventKey(e logEvent) string {
	switch e.Type {
	case "PolicyAttached", "PolicyDetached":
		return e.Type + "|" + e.Policy + "|" + e.Target
	case "MemberAdded", "MemberRemoved":
		return e.Type + "|" + e.Group + "|" + e.Identity
	case "IdentityStatusChanged":
		return e.Type + "|" + e.Status + "|" + e.ID
	}
	return ""
}

func (wl *workload) write(ctx context.Context, region string, a *app, kind string, target int, rng *rand.Rand) {
	u := wl.u
	before := make([]bool, len(u.resources))
	for r := range before {
		before[r] = u.allowed(a, r)
	}
	w := &writeRec{Region: region, Kind: kind, App: a.id, Resource: -1, Group: -1, Key: wl.writeKey(kind, a.id, target)}
	switch kind {
	case WriteGrant, WriteRevoke:
		w.Resource = target
	case WriteAddMember, WriteRemoveMember:
		w.Group, w.Resource = target, u.groupRes[target]
	}
	wl.rec.newWrite(w)
	cl := wl.writeClients[region]
	w.Sent = time.Now()
	var res client.WriteResult
	var err error
	switch kind {
	case WriteGrant:
		res, err = cl.AttachPolicy(ctx, u.policies[target], a.id)
	case WriteRevoke:
		res, err = cl.DetachPolicy(ctx, u.policies[target], a.id)
	case WriteAddMember:
		res, err = cl.AddMember(ctx, u.groups[target], a.id)
	case WriteRemoveMember:
		res, err = cl.RemoveMember(ctx, u.groups[target], a.id)
	case WriteDeactivate:
		res, err = cl.SetAppStatus(ctx, a.id, "deactivated")
	case WriteActivate:
		res, err = cl.SetAppStatus(ctx, a.id, "active")
	}
	now := time.Now()
	seq, ok := parseToken(res.ConsistencyToken)
	if err == nil && !ok {
		err = fmt.Errorf("write answered without a consistency token (%q)", res.ConsistencyToken)
	}
	if err != nil {
		// It may or may not have landed: leave the app alone from now on;
		// the log says which (verify.go).
		a.retired = true
		wl.rec.failed(w, err)
		wl.rec.gaveUpCall("write")
		return
	}
	wl.rec.acked(w, seq, now, res.Endpoint, res.Replayed)
	switch kind {
	case WriteGrant:
		a.direct[target] = true
	case WriteRevoke:
		delete(a.direct, target)
	case WriteAddMember:
		a.groups[target] = true
	case WriteRemoveMember:
		delete(a.groups, target)
	case WriteDeactivate:
		a.active = false
	case WriteActivate:
		a.active = true
	}
	for _, t := range wl.prop {
		t.add(w)
	}
	var revoked []int
	for r := range before {
		if before[r] && !u.allowed(a, r) {
			revoked = append(revoked, r)
		}
	}
	if len(revoked) > 0 {
		v := &revokeRec{Write: w, App: a.id, Resource: revoked[rng.IntN(len(revoked))]}
		wl.rec.newRevoke(v)
		a.probing.Store(true)
		wl.probes.Add(1)
		go func() {
			defer wl.probes.Done()
			defer a.probing.Store(false)
			wl.measureRevoke(ctx, v, a)
		}()
	}
}

// checker asks its region, at its mode, whether a random app may read a
// random resource, as that app.
func (wl *workload) checker(loadCtx, runCtx context.Context, region, mode string, lim *rate.Limiter, rng *rand.Rand) {
	cl := wl.checkClients[region]
	for {
		if err := lim.Wait(loadCtx); err != nil {
			return
		}
		if !wl.take(&wl.checks, wl.s.Workload.MaxChecks) {
			return
		}
		a := wl.u.apps[rng.IntN(len(wl.u.apps))]
		r := rng.IntN(len(wl.u.resources))
		acked := wl.rec.ackMax.Load()
		q := client.CheckRequest{Action: "read", Resource: wl.u.resources[r], Consistency: client.Consistency{Mode: mode}}
		rec := answerRec{Source: "workload", Home: region, Mode: mode, App: a.id, Resource: r, AckedAtSend: acked}
		if mode != iam.MinimizeLatency {
			q.Consistency.Wait = wl.s.Workload.CheckWait.D()
		}
		if mode == iam.AtLeastAsFresh {
			rec.ReqSeq = max(acked, wl.u.setupSeq)
			q.Consistency.Token = formatToken(rec.ReqSeq)
		}
		wl.rec.checkSent(mode)
		rec.Sent = time.Now()
		resp, err := cl.Check(context.WithValue(runCtx, tokenKey{}, a.token), q)
		rec.Recv = time.Now()
		if err != nil {
			code := client.Code(err)
			if code == client.CodeUnauthenticated {
				// The app's token refused: it is deactivated here.
				rec.Status = 401
				wl.rec.answer(rec)
				continue
			}
			if code == "" {
				code = "transport"
			}
			wl.rec.checkError(mode, code)
			wl.rec.gaveUpCall("check")
			continue
		}
		seq, ok := parseToken(resp.ConsistencyToken)
		if !ok {
			wl.rec.checkError(mode, "bad_token")
			continue
		}
		rec.Status, rec.Allowed, rec.Seq, rec.Region = 200, resp.Allowed, seq, resp.Region
		wl.rec.answer(rec)
	}
}

// errNotYet makes a probe poll again.
var errNotYet = errors.New("not yet")

// probeBackOff polls every interval for the first 100ms, then spaces polls
// out by half again each time up to 25ms: a revoke seen within a few
// milliseconds is timed to the interval, one held up by a partition does
// not cost a thousand requests a second.
type probeBackOff struct {
	interval time.Duration
	start    time.Time
	cur      time.Duration
}

func (b *probeBackOff) Reset() { b.start, b.cur = time.Now(), b.interval }

func (b *probeBackOff) NextBackOff() time.Duration {
	if time.Since(b.start) < 100*time.Millisecond {
		return b.interval
	}
	b.cur = min(25*time.Millisecond, max(b.cur+b.cur/2, b.cur+time.Millisecond))
	return b.cur
}

// measureRevoke probes every region with minimize_latency checks of the
// revoked access, as the app, until each denies it.
func (wl *workload) measureRevoke(ctx context.Context, v *revokeRec, a *app) {
	ctx, cancel := context.WithTimeout(ctx, wl.s.Workload.ProbeTimeout.D())
	defer cancel()
	var wg sync.WaitGroup
	for _, rn := range wl.c.regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resource := wl.u.resources[v.Resource]
			op := func() error {
				rec := answerRec{Source: "probe", Home: rn.Name, Mode: iam.MinimizeLatency, App: a.id, Resource: v.Resource,
					AckedAtSend: wl.rec.ackMax.Load(), Sent: time.Now()}
				ans, err := wl.prober.check(ctx, rn.URL, a.token, resource, iam.MinimizeLatency, 0, 0)
				rec.Recv = time.Now()
				if err != nil {
					return err
				}
				switch {
				case ans.Status == 401:
					rec.Status = 401
				case ans.Status == 200:
					rec.Status, rec.Allowed, rec.Seq, rec.Region = 200, ans.Allowed, ans.Seq, ans.Region
				default:
					return errNotYet
				}
				wl.rec.answer(rec)
				if rec.Status == 401 || !rec.Allowed {
					wl.rec.denied(v, rn.Name, rec.Recv)
					return nil
				}
				return errNotYet
			}
			_ = backoff.RetryNotify(op, backoff.WithContext(&probeBackOff{interval: wl.s.Workload.ProbeInterval.D()}, ctx),
				func(error, time.Duration) { wl.rec.metrics.ProbePolls.WithLabelValues("revoke").Inc() })
		}()
	}
	wg.Wait()
	wl.rec.revokeDone(v, len(wl.c.regions))
}

// propTracker learns when its region has applied each acknowledged write:
// up to max at_least_as_fresh checks wait in the region for the newest
// pending write's token; the server answers as soon as the replica has
// applied it, and every pending write at or below the answer's token is
// then known applied at the answer's arrival.
type propTracker struct {
	wl     *workload
	region string
	max    int

	mu       sync.Mutex
	pending  []*writeRec
	inflight int
	wg       sync.WaitGroup
	ctx      context.Context
}

func (t *propTracker) add(w *writeRec) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = append(t.pending, w)
	t.spawnLocked()
}

func (t *propTracker) spawnLocked() {
	if t.inflight >= t.max || len(t.pending) == 0 || t.ctx == nil || t.ctx.Err() != nil {
		return
	}
	var seq uint64
	for _, w := range t.pending {
		seq = max(seq, w.Seq)
	}
	t.inflight++
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.wait(seq)
	}()
}

func (t *propTracker) wait(seq uint64) {
	wl := t.wl
	rn := wl.regions[t.region]
	rng := rand.New(rand.NewPCG(seq, uint64(len(t.region))))
	a := wl.u.apps[rng.IntN(len(wl.u.apps))]
	r := rng.IntN(len(wl.u.resources))
	var got checkAnswer
	var recv time.Time
	_, err := poll(t.ctx, time.Millisecond, nil, func() error {
		rec := answerRec{Source: "waiter", Home: t.region, Mode: iam.AtLeastAsFresh, App: a.id, Resource: r, ReqSeq: seq,
			AckedAtSend: wl.rec.ackMax.Load(), Sent: time.Now()}
		ans, err := wl.prober.check(t.ctx, rn.URL, a.token, wl.u.resources[r], iam.AtLeastAsFresh, seq, 5*time.Second)
		rec.Recv = time.Now()
		if err == nil && (ans.Status == 200 || ans.Status == 401) {
			rec.Status, rec.Allowed, rec.Seq, rec.Region = ans.Status, ans.Allowed, ans.Seq, ans.Region
			wl.rec.answer(rec)
		}
		if err != nil || ans.Status != 200 {
			wl.rec.metrics.ProbePolls.WithLabelValues("propagation").Inc()
			if err == nil && ans.Status == 401 {
				// The chosen app is deactivated: ask as another.
				a = wl.u.apps[rng.IntN(len(wl.u.apps))]
			}
			return errNotYet
		}
		got, recv = ans, rec.Recv
		return nil
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight--
	if err == nil {
		var rest []*writeRec
		var done []*writeRec
		for _, w := range t.pending {
			if w.Seq <= got.Seq {
				done = append(done, w)
			} else {
				rest = append(rest, w)
			}
		}
		t.pending = rest
		wl.rec.applied(t.region, done, got.Seq, recv)
	}
	t.spawnLocked()
}

// idle reports whether no write is pending.
func (t *propTracker) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) == 0
}

// watchHeal measures how soon region is current after h.At: a check
// waiting for the latest write acknowledged by then.
func (wl *workload) watchHeal(ctx context.Context, h *healRec) {
	wl.rec.heal(h)
	if h.Seq == 0 {
		wl.rec.current(h, h.At)
		return
	}
	wl.probes.Add(1)
	go func() {
		defer wl.probes.Done()
		rn := wl.regions[h.Region]
		ctx, cancel := context.WithTimeout(ctx, wl.s.Workload.ProbeTimeout.D())
		defer cancel()
		k := 0
		_, err := poll(ctx, time.Millisecond, nil, func() error {
			a := wl.u.apps[k%len(wl.u.apps)]
			ans, err := wl.prober.check(ctx, rn.URL, a.token, wl.u.resources[0], iam.AtLeastAsFresh, h.Seq, 5*time.Second)
			if err == nil && ans.Status == 200 {
				wl.rec.current(h, time.Now())
				return nil
			}
			if err == nil && ans.Status == 401 {
				k++ // a deactivated app: ask as another
			}
			wl.rec.metrics.ProbePolls.WithLabelValues("heal").Inc()
			return errNotYet
		})
		_ = err // an unmeasured heal stays without Current; the report says so
	}()
}

// sampleLag reads each region's own row of GET /v1/replicas every
// interval until ctx ends.
func (wl *workload) sampleLag(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, rn := range wl.c.regions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, interval)
				defer cancel()
				rows, err := wl.prober.replicas(cctx, rn.URL, wl.adminToken)
				if err != nil {
					return
				}
				for _, row := range rows {
					if row.Region == rn.Name {
						wl.rec.lagSample(lagSample{Region: rn.Name, At: time.Now(), LagSeconds: row.LagSeconds,
							LagEvents: row.LagEvents, Healthy: row.Healthy})
					}
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
