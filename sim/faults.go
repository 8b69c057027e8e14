package sim

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/iam-project/iam/sim/faultproxy"
)

// faultRunner applies a scenario's link conditions and fault schedule.
type faultRunner struct {
	s      Scenario
	c      *cluster
	rec    *recorder
	wl     *workload
	log    *slog.Logger
	links  map[string]faultproxy.Link
	cuts   map[string]int // nesting of cuts per region (partition inside a flap, ...)
	notes  []string
	killed []string
}

func newFaultRunner(s Scenario, c *cluster, rec *recorder, wl *workload, log *slog.Logger) *faultRunner {
	f := &faultRunner{s: s, c: c, rec: rec, wl: wl, log: log, links: map[string]faultproxy.Link{}, cuts: map[string]int{}}
	for _, rn := range c.regions {
		f.links[rn.Name] = rn.Link
	}
	return f
}

func (f *faultRunner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(f.notes, msg) {
		f.notes = append(f.notes, msg)
	}
}

// steady applies each link's steady condition.
func (f *faultRunner) steady() error {
	for _, region := range f.s.Regions {
		if err := f.restore(region); err != nil {
			return err
		}
	}
	return nil
}

func (f *faultRunner) restore(region string) error {
	l := f.s.LinkOf(region)
	if err := f.links[region].SetLatency(l.Latency.D(), l.Jitter.D()); err != nil {
		return err
	}
	if err := f.links[region].SetBandwidth(l.BandwidthKBps); err != nil {
		return err
	}
	return nil
}

type action struct {
	at time.Duration
	do func(ctx context.Context)
}

// plan turns the fault schedule into timed actions.
func (f *faultRunner) plan() []action {
	var as []action
	add := func(at time.Duration, do func(context.Context)) { as = append(as, action{at, do}) }
	for _, ft := range f.s.Faults {
		regions := f.s.faultRegions(ft)
		win := FaultWindow{Kind: ft.Kind, Regions: regions, Start: ft.At, End: ft.At + ft.For}
		switch ft.Kind {
		case FaultPartition:
			add(ft.At.D(), func(context.Context) {
				f.rec.fault(win)
				for _, r := range regions {
					f.cut(r)
				}
			})
			add(ft.At.D()+ft.For.D(), func(ctx context.Context) {
				for _, r := range regions {
					f.heal(ctx, r, ft.Kind)
				}
			})
		case FaultFlap:
			for at := ft.At.D(); at < ft.At.D()+ft.For.D(); at += ft.Period.D() {
				w := FaultWindow{Kind: ft.Kind, Regions: regions, Start: Duration(at), End: Duration(at + ft.Down.D())}
				add(at, func(context.Context) {
					f.rec.fault(w)
					for _, r := range regions {
						f.cut(r)
					}
				})
				add(at+ft.Down.D(), func(ctx context.Context) {
					for _, r := range regions {
						f.heal(ctx, r, ft.Kind)
					}
				})
			}
		case FaultReset:
			win.End = ft.At
			add(ft.At.D(), func(ctx context.Context) {
				f.rec.fault(win)
				for _, r := range regions {
					if f.cuts[r] == 0 {
						f.links[r].Cut()
						if err := f.links[r].Heal(); err != nil {
							f.note("reset of %s: %v", r, err)
						}
						f.healed(ctx, r, ft.Kind)
					}
				}
			})
		case FaultLatency:
			if ft.For == 0 {
				win.End, win.toLoadEnd = f.s.Duration, true
			}
			add(ft.At.D(), func(context.Context) {
				f.rec.fault(win)
				for _, r := range regions {
					if err := f.links[r].SetLatency(ft.Latency.D(), ft.Jitter.D()); err != nil {
						f.note("latency on %s: %v", r, err)
					}
				}
			})
			if ft.For > 0 {
				add(ft.At.D()+ft.For.D(), func(context.Context) {
					for _, r := range regions {
						_ = f.restore(r)
					}
				})
			}
		case FaultBandwidth:
			if ft.For == 0 {
				win.End, win.toLoadEnd = f.s.Duration, true
			}
			add(ft.At.D(), func(context.Context) {
				for _, r := range regions {
					if err := f.links[r].SetBandwidth(ft.BandwidthKBps); err != nil {
						win.Note = "not applied: " + err.Error()
						f.note("bandwidth fault on %s not applied: %v", r, err)
					}
				}
				f.rec.fault(win)
			})
			if ft.For > 0 {
				add(ft.At.D()+ft.For.D(), func(context.Context) {
					for _, r := range regions {
						_ = f.restore(r)
					}
				})
			}
		case FaultKillHubNode:
			win.Regions = nil
			add(ft.At.D(), func(context.Context) {
				name, err := f.c.killHub(ft.Node)
				if err != nil {
					f.note("kill hub node %q: %v", ft.Node, err)
					return
				}
				win.Node = name
				f.killed = append(f.killed, name)
				f.rec.fault(win)
				f.log.Info("hub node killed", "node", name)
			})
		}
	}
	slices.SortStableFunc(as, func(a, b action) int { return int(a.at - b.at) })
	return as
}

func (f *faultRunner) cut(region string) {
	f.cuts[region]++
	if f.cuts[region] == 1 {
		f.links[region].Cut()
	}
}

func (f *faultRunner) heal(ctx context.Context, region, kind string) {
	if f.cuts[region] == 0 {
		return
	}
	f.cuts[region]--
	if f.cuts[region] > 0 {
		return
	}
	if err := f.links[region].Heal(); err != nil {
		f.note("heal %s: %v", region, err)
		return
	}
	f.healed(ctx, region, kind)
}

func (f *faultRunner) healed(ctx context.Context, region, kind string) {
	f.wl.watchHeal(ctx, &healRec{Region: region, Kind: kind, At: time.Now(), Seq: f.rec.ackMax.Load()})
}

// run applies the plan until ctx ends; probeCtx bounds the heal watchers.
func (f *faultRunner) run(ctx, probeCtx context.Context) {
	for _, a := range f.plan() {
		t := time.NewTimer(time.Until(f.rec.start.Add(a.at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		a.do(probeCtx)
	}
}

// end heals every link still cut and restores steady conditions.
func (f *faultRunner) end(probeCtx context.Context) {
	for _, region := range f.s.Regions {
		if f.cuts[region] > 0 {
			f.cuts[region] = 1
			f.heal(probeCtx, region, "end")
		}
		_ = f.restore(region)
	}
}
