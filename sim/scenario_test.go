package sim_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/sim"
)

// TestLoadScenario_Files parses every scenario file and its short version:
// each is valid, and each short version stays under ~20 s.
func TestLoadScenario_Files(t *testing.T) {
	for _, name := range scenarioFiles {
		t.Run(name, func(t *testing.T) {
			full, err := sim.LoadScenario(scenarioPath(name), false)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sim.LoadScenario(scenarioPath(name), true)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != name || full.Name != name {
				t.Errorf("got names %q and %q, want %q", full.Name, s.Name, name)
			}
			if s.Duration.D() > 19*time.Second || s.Duration > full.Duration {
				t.Errorf("short duration %s (full %s): want at most 19s and no longer than the full run", s.Duration.D(), full.Duration.D())
			}
			if full.Seed == 0 {
				t.Error("no seed: runs would not be repeatable")
			}
		})
	}
}

func TestParseScenario_Invalid(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"name": "x", "duration": "5s", "regions": []string{"eu-west", "us-east"},
			"workload": map[string]any{"writesPerSecond": 1}}
	}
	tests := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"unknown field", func(m map[string]any) { m["bogus"] = 1 }, "unknown field"},
		{"no regions", func(m map[string]any) { m["regions"] = []string{} }, "regions"},
		{"bad region", func(m map[string]any) { m["regions"] = []string{"EU West"} }, "region name"},
		{"two-node hub", func(m map[string]any) { m["hub"] = map[string]any{"nodes": 2} }, "hub.nodes"},
		{"fault past the end", func(m map[string]any) {
			m["faults"] = []map[string]any{{"kind": "partition", "at": "9s", "for": "1s"}}
		}, "within the duration"},
		{"unknown fault", func(m map[string]any) { m["faults"] = []map[string]any{{"kind": "meteor", "at": "1s"}} }, "kind must be"},
		{"flap without period", func(m map[string]any) {
			m["faults"] = []map[string]any{{"kind": "flap", "at": "1s", "for": "2s", "down": "1s"}}
		}, "period"},
		{"kill on one node", func(m map[string]any) { m["faults"] = []map[string]any{{"kind": "kill-hub-node", "at": "1s"}} }, "3 nodes"},
		{"unknown region in fault", func(m map[string]any) {
			m["faults"] = []map[string]any{{"kind": "reset", "at": "1s", "regions": []string{"mars"}}}
		}, "mars"},
		{"unknown mode", func(m map[string]any) { m["workload"] = map[string]any{"checks": map[string]any{"eventual": 1}} }, "eventual"},
		{"bad backoff", func(m map[string]any) { m["backoff"] = map[string]any{"jitter": 1.5} }, "jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(m)
			data, _ := json.Marshal(m)
			_, err := sim.ParseScenario(data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestScenario_Shortened(t *testing.T) {
	data := []byte(`{"name": "x", "seed": 3, "duration": "30s", "regions": ["eu-west"],
		"workload": {"writesPerSecond": 5, "checks": {"minimize_latency": 10}},
		"faults": [{"kind": "partition", "at": "10s", "for": "15s"}],
		"short": {"duration": "8s", "faults": [{"kind": "partition", "at": "2s", "for": "3s"}], "workload": {"checks": {"at_least_as_fresh": 2}}}}`)
	s, err := sim.ParseScenario(data)
	if err != nil {
		t.Fatal(err)
	}
	short, err := s.Shortened()
	if err != nil {
		t.Fatal(err)
	}
	if short.Duration.D() != 8*time.Second || len(short.Faults) != 1 || short.Faults[0].At.D() != 2*time.Second {
		t.Errorf("short: got duration %s faults %+v, want 8s and one partition at 2s", short.Duration.D(), short.Faults)
	}
	if short.Workload.WritesPerSecond != 5 || short.Workload.Checks["minimize_latency"] != 10 || short.Workload.Checks["at_least_as_fresh"] != 2 {
		t.Errorf("short workload: got %+v, want the full one's with the override merged", short.Workload)
	}
	if s.Workload.Checks["at_least_as_fresh"] != 0 || s.Duration.D() != 30*time.Second {
		t.Error("Shortened changed the original")
	}
}
