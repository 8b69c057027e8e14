package replica_test

import (
	"context"
	"flag"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

var (
	historyUsers            = flag.Int("history-users", 9000, "users of BenchmarkAtExactSnapshot's log (11 entries each, ~100k entries at 9000)")
	historyCheckpointMemory = flag.Int64("history-checkpoint-memory", 0, "BenchmarkAtExactSnapshot's replica.Config.CheckpointMemory (0: the default)")
)

// BenchmarkAtExactSnapshot measures at_exact_snapshot checks on a log of
// ~100k entries (-history-users=90000 for ~1M) applied at the default
// checkpoint spacing, once their files are written: at a random past
// token (each a state forked from a checkpoint's index and a replay, the
// cache rarely hit), at a
// checkpoint's token (a fork, no replay), at the current token, a
// minimize_latency check for comparison, and at a random past token again
// after Close and Open (the checkpoints then come from their files, their
// indexes rebuilt from the log in the background: measured once that is
// done). The log is held in memory: reading it from JetStream adds ~14 µs
// per replayed entry and ~50 ms per read (eventlog's BenchmarkReadRange),
// reported here as replayed entries per build. Figures only; run with
// -benchtime=200x.
func BenchmarkAtExactSnapshot(b *testing.B) {
	d := newBenchData(*historyUsers)
	var replayed int
	history := func(_ context.Context, from, to uint64, fn func(iam.LogEntry) error) error {
		for _, e := range d.entries[from-1 : to] {
			replayed++
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	dir := benchDir(b)
	cfg := replica.Config{Region: "bench", Dir: filepath.Join(dir, "r"), History: history, CheckpointMemory: *historyCheckpointMemory}
	rep, err := replica.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { rep.Close() }()
	start := time.Now()
	for i := 0; i < len(d.entries); i += replayBatch {
		if err := rep.ApplyEntries(d.entries[i:min(i+replayBatch, len(d.entries))]); err != nil {
			b.Fatal(err)
		}
	}
	applied := time.Since(start)
	head := rep.Applied()
	cps := rep.Checkpoints()
	// The steady state: after a catch-up the persister builds the indexes
	// it deferred, then goes on writing files beside the reads for a
	// while (at most half a core).
	caughtUp := len(replica.IndexedCheckpoints(rep))
	t0 := time.Now()
	if err := replica.BuildDeferredIndexes(rep); err != nil {
		b.Fatal(err)
	}
	b.Logf("the apply took %d indexes, the %d it deferred were built in %s after it", caughtUp,
		len(replica.IndexedCheckpoints(rep))-caughtUp, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := replica.PersistCheckpoints(context.Background(), rep); err != nil {
		b.Fatal(err)
	}
	b.Logf("checkpoint files written in %s after the apply", time.Since(t0).Round(time.Millisecond))
	indexed := replica.IndexedCheckpoints(rep)
	b.Logf("%d entries applied in %s; %d checkpoints (spacing %d at first, doubled as they are thinned): %v…%v; %d hold an index: %v",
		head, applied.Round(time.Millisecond), len(cps), replica.DefaultCheckpointEvery, cps[:min(4, len(cps))], cps[max(0, len(cps)-4):], len(indexed), indexed)
	qs := benchQueries(*historyUsers, 1<<12)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tc := range []struct {
		name  string
		token func() uint64
		mode  string
	}{
		{"past", func() uint64 { return 1 + rng.Uint64N(head) }, replica.AtExactSnapshot},
		{"checkpoint", func() uint64 { return cps[rng.IntN(len(cps))] }, replica.AtExactSnapshot},
		{"current", func() uint64 { return head }, replica.AtExactSnapshot},
		{"normal", func() uint64 { return 0 }, replica.MinimizeLatency},
		{"reopened", nil, replica.AtExactSnapshot},
	} {
		if tc.token == nil {
			// The checkpoints' files, written in the background and the
			// rest at Close, are what a restarted replica starts from.
			t0 = time.Now()
			if err := rep.Close(); err != nil {
				b.Fatal(err)
			}
			closed := time.Since(t0)
			t0 = time.Now()
			if rep, err = replica.Open(cfg); err != nil {
				b.Fatal(err)
			}
			opened := time.Since(t0)
			replica.WaitWarm(rep)
			b.Logf("reopened in %s; the checkpoints' indexes rebuilt from the log %s later: %d of %d",
				opened.Round(time.Millisecond), (time.Since(t0) - opened).Round(time.Millisecond), len(replica.IndexedCheckpoints(rep)), len(rep.Checkpoints()))
			model, files := diskBytes(b, filepath.Join(dir, "r")), diskBytes(b, filepath.Join(dir, "r.checkpoints"))
			b.Logf("closed in %s (writing the checkpoint files not yet written); reopened with checkpoints %v…; disk: read model %.1f MiB, checkpoint files %.1f MiB",
				closed.Round(time.Millisecond), rep.Checkpoints()[:min(4, len(rep.Checkpoints()))], float64(model)/(1<<20), float64(files)/(1<<20))
			tc.token = func() uint64 { return 1 + rng.Uint64N(head) }
		}
		b.Run(tc.name, func(b *testing.B) {
			replayed = 0
			var samples []time.Duration
			i := 0
			for b.Loop() {
				c := replica.Consistency{Mode: tc.mode, Token: tc.token()}
				t0 := time.Now()
				if _, _, err := rep.Check(ctx, qs[i%len(qs)], c); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(t0))
				i++
			}
			slices.Sort(samples)
			pct := func(p float64) float64 {
				return float64(samples[min(len(samples)-1, int(p*float64(len(samples))))].Nanoseconds()) / 1e3
			}
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.90), "p90-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			b.ReportMetric(float64(replayed)/float64(len(samples)), "replayed/op")
			b.ReportMetric(float64(len(cps)), "checkpoints")
			b.ReportMetric(float64(len(replica.IndexedCheckpoints(rep))), "indexed")
			// The live state plus the past states built and cached.
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
		})
	}
}

// diskBytes returns the bytes of the files under root.
func diskBytes(tb testing.TB, root string) int64 {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkApplyCheckpoints measures what checkpoints cost a replay of the
// BenchmarkAtExactSnapshot log into an empty replica: at the default
// spacing (a Pebble snapshot each, an index for one in eight while the
// replay goes on, the persister building the others' and writing the files
// once it ends), without the indexes, and with none. Close, which writes
// the files the persister has not reached, is not timed. Figures only.
func BenchmarkApplyCheckpoints(b *testing.B) {
	d := newBenchData(*historyUsers)
	for _, tc := range []struct {
		name   string
		every  uint64
		memory int64
	}{{"default", 0, 0}, {"files-only", 0, -1}, {"none", 1 << 62, -1}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				rep, err := replica.Open(replica.Config{Region: "bench", Dir: filepath.Join(benchDir(b), "r"), CheckpointEvery: tc.every, CheckpointMemory: tc.memory, History: d.history})
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(d.entries); i += replayBatch {
					if err := rep.ApplyEntries(d.entries[i:min(i+replayBatch, len(d.entries))]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := rep.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(len(d.entries))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkCheckpointIndex times the index a checkpoint takes of a live
// replica (State.Snapshot, under applyMu: the apply waits for it, every
// DefaultCheckpointEvery entries) of the workload log's state (IAM_JOIN_EVENTS
// events, default 1,000,000: ~820k rows, 192k identities, 55k policies).
// Each op snapshots the state the one before left, as the checkpoints of a
// live replica do. Run with -benchtime=20x or so.
func BenchmarkCheckpointIndex(b *testing.B) {
	st := newWorkload(b, 11, envInt(b, "IAM_JOIN_EVENTS", 1_000_000)).state
	var exclusive sync.Mutex
	for b.Loop() {
		st.Snapshot(&exclusive)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/snapshot")
}
