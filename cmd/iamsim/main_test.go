package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam/sim"
)

// TestRun_DefaultReport runs iamsim as `iamsim --out DIR` (the default
// scenario) and checks the report it writes: the JSON figures, three PNG
// plots and the HTML page naming them, and a summary on stdout.
func TestRun_DefaultReport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the simulated topology")
	}
	dir := filepath.Join(t.TempDir(), "report")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := run(ctx, []string{"--out", dir}, &stdout, &stderr)
	t.Log(stdout.String())
	if code == 2 {
		t.Fatalf("iamsim exited %d; stderr: %s", code, tail(stderr.String()))
	}
	if !strings.Contains(stdout.String(), "scenario default") || !strings.Contains(stdout.String(), "SLO") {
		t.Errorf("stdout has no summary table: %q", tail(stdout.String()))
	}
	if !strings.Contains(stderr.String(), "\r[default]") {
		t.Errorf("stderr has no progress line: %q", tail(stderr.String()))
	}
	for _, f := range sim.ReportFiles {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("report file %s: %v (size %d), want it written", f, err, sizeOf(st))
		}
	}
	for _, f := range []string{sim.FilePropagation, sim.FileLag, sim.FileRetries} {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG", f)
		}
	}
	html, _ := os.ReadFile(filepath.Join(dir, sim.FileHTML))
	for _, f := range []string{sim.FilePropagation, sim.FileLag, sim.FileRetries, sim.FileJSON} {
		if !bytes.Contains(html, []byte(f)) {
			t.Errorf("index.html does not show %s", f)
		}
	}
	var r sim.Report
	data, _ := os.ReadFile(filepath.Join(dir, sim.FileJSON))
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	// Exit 1 is a missed SLO. The invariants must hold on any machine; a
	// latency target missed under load (the race detector, other packages'
	// tests beside this one) is logged.
	for _, o := range r.SLOs {
		invariant := strings.HasPrefix(o.Name, "stale answers") || strings.HasPrefix(o.Name, "answers matching") ||
			strings.HasSuffix(o.Name, "events") || o.Name == "regions converge"
		switch {
		case !o.OK && invariant:
			t.Errorf("SLO %s: got %s, want %s", o.Name, o.Got, o.Target)
		case !o.OK:
			t.Logf("SLO missed on this run (raceOn %t): %s: got %s, want %s", raceOn, o.Name, o.Got, o.Target)
		}
	}
	if (code == 1) == r.Pass {
		t.Errorf("exit %d with report pass %t", code, r.Pass)
	}
	if r.Writes.Acked == 0 || len(r.Propagation) != len(r.Regions) || r.TimeToRevoke.All.N == 0 || len(r.SLOs) == 0 {
		t.Errorf("report.json lacks figures: %d writes, %d propagation rows for %d regions, %d revokes, %d SLOs",
			r.Writes.Acked, len(r.Propagation), len(r.Regions), r.TimeToRevoke.All.N, len(r.SLOs))
	}
	metrics, _ := os.ReadFile(filepath.Join(dir, sim.FileMetrics))
	if !bytes.Contains(metrics, []byte("iamsim_client_retries_total")) {
		t.Error("metrics.txt has no retry counter")
	}
}

func TestRun_Usage(t *testing.T) {
	tests := [][]string{{"extra"}, {"run"}, {"run", "a.json", "b.json"}, {"run", "/no/such/file.json"}, {"--bogus"}}
	for _, args := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("iamsim %v: got exit %d, want 2", args, code)
		}
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
