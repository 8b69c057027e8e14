package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/sim"
)

// scenarioFiles are the scenarios in the repository, in the order CI runs
// their short versions.
var scenarioFiles = []string{"steady", "slow-region", "partition-and-heal", "flapping-link", "hub-node-failover", "write-burst"}

// The short runs assert what must hold whatever the machine's load — no
// stale answer, no lost or duplicated event, convergence, recovery within
// its target (not under the race detector: see below), the minimum amounts
// of work — and log their latency verdicts
// (time-to-revoke, propagation) without failing on them: timing goals
// belong in benchmarks (`iamsim run FILE` reports against the exact
// targets), and a p99 of ~100–500 samples lands on the hub→region path's
// own p99.9 tail (5–15 ms here; ../shared/reference/JETSTREAM-NOTES.md
// measured 7.9 ms), which on a shared 2-core machine moves a slow region's
// p99 by more than the 10 ms its target leaves. Under the race detector
// recovery times and minimize_latency staleness are logged too, and the
// minimums quartered: go test runs the other packages' -race
// tests beside this one, and a heal then waited 7–16 s for a reconnect on
// 2 cores; .ci/run asserts them in its run without the race detector.

func scenarioPath(name string) string { return filepath.Join("..", "testdata", "sim", name+".json") }

// TestScenarios_Short runs the short version of every scenario file, one
// after the other, and asserts its SLOs: zero stale answers under
// at_least_as_fresh and fully_consistent, zero lost or duplicated events,
// convergence, and the scenario's own targets.
func TestScenarios_Short(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated topology")
	}
	for _, name := range scenarioFiles {
		t.Run(name, func(t *testing.T) {
			s, err := sim.LoadScenario(scenarioPath(name), true)
			if err != nil {
				t.Fatal(err)
			}
			exact := s.SLO
			var cfg sim.Config
			if raceOn {
				// What this run asserts is correctness: no stale answer,
				// nothing lost or duplicated, convergence. What depends on
				// speed is logged, not asserted, and .ci/run asserts it in
				// its run without the race detector (-p 1): latency,
				// recovery, and the share of minimize_latency answers
				// behind the latest write (propagation by another name).
				// The minimum amounts of work, there so that correctness
				// is not judged on an idle run, are a quarter: the race
				// detector slows this code 10–15×, and go test runs the
				// other packages' race tests beside it on 2 cores. Measured
				// in .ci/run: write-burst 162 and 171 writes of 400, steady
				// 28 of 60 writes and 261 of 500 checks (propagation p50
				// 8–14 s, load 4); alone under -race write-burst
				// acknowledges 551; once, 96 (propagation p50 7 s, so
				// the closed-loop writers waited): the load then goes on
				// up to 10 s longer until the minimums are met. Verdicts
				// at the exact targets are logged.
				cfg.ExtendLoad = 10 * time.Second
				s.SLO = s.SLO.Scaled(0, 0)
				s.SLO.MaxStaleMinimizeLatency = nil
				s.SLO.MinWrites, s.SLO.MinRevokes, s.SLO.MinChecks = s.SLO.MinWrites/4, s.SLO.MinRevokes/4, s.SLO.MinChecks/4
				t.Log("race detector on: latency, recovery and minimize_latency staleness logged, not asserted (the run without it asserts them); minimums quartered")
			} else {
				s.SLO = s.SLO.Scaled(0, 1)
				t.Log("latency targets reported, not asserted (iamsim run FILE judges them); verdicts at the exact targets are logged")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cfg.Scenario, cfg.Dir = s, t.TempDir()
			r, err := sim.Run(ctx, cfg)
			if err != nil {
				t.Fatalf("run %s: %v", name, err)
			}
			var sum strings.Builder
			r.WriteSummary(&sum)
			t.Log(sum.String())
			if dir := os.Getenv("IAMSIM_REPORTS"); dir != "" {
				if err := sim.WriteReport(filepath.Join(dir, name), r); err != nil {
					t.Error(err)
				}
			}
			for _, o := range r.SLOs {
				if !o.OK {
					t.Errorf("SLO %s: got %s, want %s", o.Name, o.Got, o.Target)
				}
			}
			for _, o := range r.Evaluate(exact) {
				if !o.OK {
					t.Logf("exact target missed (tolerated above): %s: got %s, want %s", o.Name, o.Got, o.Target)
				}
			}
			for _, v := range r.Violations {
				t.Log(v)
			}
		})
	}
}
