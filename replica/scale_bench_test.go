package replica_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// BenchmarkScale measures one region at issue 11's scale: the benchmark
// realm (bench_test.go) with 10 grants a user, at 100k users (1M grants)
// and 1M users (10M grants). For each it reports
//
//   - replay: the log applied to an empty replica in batches of 512
//     (events/s);
//   - restart: Open of the replica replayed, loading its index from Pebble,
//     until it could serve (restart-s);
//   - memory: VmRSS and heap in use after a GC, with only the reopened
//     replica live (RSS-MiB, heap-MiB, and the heap per grant);
//   - checks: p50 and p99 of in-process Replica.Check (minimize_latency)
//     from one goroutine, over benchQueries' mix.
//
// The log is streamed, never held, so the 10M run stays near the replica's
// own footprint (about 2.5 GiB peak). Run one size at a time, with
// -benchtime 1x:
//
//	go test -run '^$' -bench 'BenchmarkScale/grants=1M$' -benchtime 1x ./replica/
func BenchmarkScale(b *testing.B) {
	for _, size := range []struct {
		name  string
		users int
	}{{"1M", 100_000}, {"10M", 1_000_000}} {
		b.Run("grants="+size.name, func(b *testing.B) {
			for b.Loop() {
				scaleRun(b, size.users)
			}
		})
	}
}

// scaleSamples is how many checks each run times.
const scaleSamples = 200_000

func scaleRun(b *testing.B, users int) {
	dir := filepath.Join(benchDir(b), "r")
	defer os.RemoveAll(filepath.Dir(dir))
	replay := scaleReplay(b, dir, users)
	runtime.GC()
	debug.FreeOSMemory()

	start := time.Now()
	rep, err := replica.Open(replica.Config{Region: "bench", Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer rep.Close()
	restart := time.Since(start)
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, heap := vmRSSMiB(), float64(ms.HeapInuse)/(1<<20)

	qs := benchQueries(users, 1<<16)
	c := replica.Consistency{Mode: replica.MinimizeLatency}
	ctx := context.Background()
	samples := make([]time.Duration, scaleSamples)
	for i := range samples {
		t0 := time.Now()
		if _, _, err := rep.Check(ctx, qs[i%len(qs)], c); err != nil {
			b.Fatal(err)
		}
		samples[i] = time.Since(t0)
	}
	slices.Sort(samples)
	pct := func(p float64) float64 { return float64(samples[int(p*float64(len(samples)-1))].Nanoseconds()) / 1e3 }

	grants := benchGrants(users)
	events := benchEvents(users)
	b.ReportMetric(float64(events)/replay.Seconds(), "replay-events/s")
	b.ReportMetric(restart.Seconds(), "restart-s")
	b.ReportMetric(rss, "RSS-MiB")
	b.ReportMetric(heap, "heap-MiB")
	b.ReportMetric(heap*(1<<20)/float64(grants), "heap-B/grant")
	b.ReportMetric(pct(0.50), "check-p50-µs")
	b.ReportMetric(pct(0.99), "check-p99-µs")
	b.Logf("%d users, %d grants, %d events: replay %s (%.0f events/s), restart %s, RSS %.0f MiB, heap %.0f MiB (%.0f B/grant), check p50 %.1f µs p99 %.1f µs p99.9 %.1f µs",
		users, grants, events, replay.Round(time.Millisecond), float64(events)/replay.Seconds(), restart.Round(time.Millisecond),
		rss, heap, heap*(1<<20)/float64(grants), pct(0.50), pct(0.99), pct(0.999))
}

// BenchmarkOpen measures only the restart of BenchmarkScale: the read model
// is replayed once, untimed, then opened and closed b.N times. Besides the
// wall time per Open it reports the process's CPU time per Open
// (cpu-s/op: user and system, GC included), which the other work on a
// shared machine disturbs less. Run with -benchtime 5x; with -cpuprofile
// and pprof's -focus 'replica.Open$' it profiles nothing but Open.
//
//	go test -run '^$' -bench 'BenchmarkOpen/grants=1M$' -benchtime 5x ./replica/
func BenchmarkOpen(b *testing.B) {
	for _, size := range []struct {
		name  string
		users int
	}{{"1M", 100_000}, {"10M", 1_000_000}} {
		b.Run("grants="+size.name, func(b *testing.B) {
			dir := filepath.Join(benchDir(b), "r")
			defer os.RemoveAll(filepath.Dir(dir))
			scaleReplay(b, dir, size.users)
			runtime.GC()
			debug.FreeOSMemory()
			var cpu time.Duration
			for b.Loop() {
				before := cpuTime(b)
				rep, err := replica.Open(replica.Config{Region: "bench", Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime(b) - before
				b.StopTimer()
				if err := rep.Close(); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cpuTime is the user and system CPU time the process has used so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scaleReplay replays the benchmark log of users into a new replica in
// dir, in batches of replayBatch, closes it, and returns the time spent in
// ApplyEntries.
func scaleReplay(b *testing.B, dir string, users int) time.Duration {
	rep, err := replica.Open(replica.Config{Region: "bench", Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]iam.LogEntry, 0, replayBatch)
	var replay time.Duration
	flush := func() {
		start := time.Now()
		if err := rep.ApplyEntries(batch); err != nil {
			b.Fatal(err)
		}
		replay += time.Since(start)
		batch = batch[:0]
	}
	benchLog(users, func(e iam.LogEntry) {
		if batch = append(batch, e); len(batch) == replayBatch {
			flush()
		}
	})
	flush()
	if err := rep.Close(); err != nil {
		b.Fatal(err)
	}
	return replay
}
