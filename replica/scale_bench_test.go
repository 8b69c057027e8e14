package replica_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
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
//     until it could serve (restart-s), and the same in a new process, as
//     a region restarts (fresh-restart-s, its CPU and the child's peak RSS);
//   - memory: VmRSS and heap in use after a GC, with only the reopened
//     replica live (RSS-MiB, heap-MiB, and the heap per grant);
//   - checks: p50 and p99 of in-process Replica.Check (minimize_latency)
//     from one goroutine, over benchQueries' mix, back to back; and the
//     page faults per check over the whole loop (a first touch of a
//     fresh page costs 5-40 µs on this VM).
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
	// Touched before timing: their first write would fault a page in
	// every 512 samples, and count as the check's.
	for i := range samples {
		samples[i] = 1
	}
	// No system call between two checks: one per check (getrusage, to
	// split the checks that faulted) doubled the p50 and the p99 it
	// measured at 1M grants, the next check paying for the kernel's entry
	// and exit (at 10M, where the data's cache misses dominate, the runs
	// with and without it overlap).
	faults := processUsage().faults
	for i := range samples {
		t0 := time.Now()
		if _, _, err := rep.Check(ctx, qs[i%len(qs)], c); err != nil {
			b.Fatal(err)
		}
		samples[i] = time.Since(t0)
	}
	faultsPerCheck := float64(processUsage().faults-faults) / float64(len(samples))
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	if err := rep.Close(); err != nil {
		b.Fatal(err)
	}
	fresh := freshOpen(b, dir)

	grants := benchGrants(users)
	events := benchEvents(users)
	b.ReportMetric(float64(events)/replay.Seconds(), "replay-events/s")
	b.ReportMetric(restart.Seconds(), "restart-s")
	fresh.report(b)
	b.ReportMetric(rss, "RSS-MiB")
	b.ReportMetric(heap, "heap-MiB")
	b.ReportMetric(heap*(1<<20)/float64(grants), "heap-B/grant")
	b.ReportMetric(pct(0.50), "check-p50-µs")
	b.ReportMetric(pct(0.99), "check-p99-µs")
	b.ReportMetric(faultsPerCheck, "faults/check")
	b.Logf("%d users, %d grants, %d events: replay %s (%.0f events/s), restart %s (in a new process %s, peak RSS %.0f MiB), RSS %.0f MiB, heap %.0f MiB (%.0f B/grant), check p50 %.1f µs p99 %.1f µs p99.9 %.1f µs",
		users, grants, events, replay.Round(time.Millisecond), float64(events)/replay.Seconds(), restart.Round(time.Millisecond),
		fresh.wall.Round(time.Millisecond), fresh.peakRSS, rss, heap, heap*(1<<20)/float64(grants), pct(0.50), pct(0.99), pct(0.999))
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
			freshOpen(b, dir).report(b)
		})
	}
}

// BenchmarkLoadSnapshot measures what a joining region spends on the
// snapshot itself, without download and tail (BenchmarkJoin times those
// too): Replica.LoadSnapshot of BenchmarkScale's read model at 1M grants
// (1.1M rows) into an empty replica, verifying, ingesting into Pebble and
// building the index beside it. It reports the wall and CPU time per load.
//
//	go test -run '^$' -bench 'BenchmarkLoadSnapshot' -benchtime 5x ./replica/
func BenchmarkLoadSnapshot(b *testing.B) {
	root := benchDir(b)
	defer os.RemoveAll(root)
	src := filepath.Join(root, "src")
	scaleReplay(b, src, 100_000)
	rep, err := replica.Open(replica.Config{Region: "bench", Dir: src})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := rep.Store().Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	var data bytes.Buffer
	h, _, err := snap.Write(&data, replica.SnapshotOptions{})
	snap.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := rep.Close(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var cpu time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		n++
		dir := filepath.Join(root, "join"+strconv.Itoa(n))
		dst, err := replica.Open(replica.Config{Region: "join", Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		before := cpuTime(b)
		if _, err := dst.LoadSnapshot(context.Background(), bytes.NewReader(data.Bytes()), replica.LoadOptions{}); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - before
		b.StopTimer()
		if err := dst.Close(); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(dir)
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(h.Rows), "rows")
}

// openChildDir names, in a child process's environment, the read model
// that TestOpenChild opens.
const openChildDir = "IAM_BENCH_OPEN_DIR"

// freshRestart is a restart timed in a new process.
type freshRestart struct {
	wall, cpu time.Duration
	peakRSS   float64 // MiB, the child's
}

func (f freshRestart) report(b *testing.B) {
	b.ReportMetric(f.wall.Seconds(), "fresh-restart-s")
	b.ReportMetric(f.cpu.Seconds(), "fresh-cpu-s")
	b.ReportMetric(f.peakRSS, "fresh-peak-RSS-MiB")
}

// freshOpen opens the closed read model in dir in a new process (this test
// binary running TestOpenChild), as a restarted region does: its table of
// interned ids starts empty, whereas an Open in the benchmark's own
// process finds every id interned by the replay.
func freshOpen(b *testing.B, dir string) freshRestart {
	fig := childFigures(b, "TestOpenChild", openChildDir+"="+dir, "fresh-open", 3)
	return freshRestart{wall: seconds(fig[0]), cpu: seconds(fig[1]), peakRSS: fig[2]}
}

// childFigures runs test in a new process of this test binary with env
// set, and returns the n figures it prints after tag.
func childFigures(b *testing.B, test, env, tag string, n int) []float64 {
	cmd := exec.Command(os.Args[0], "-test.run", "^"+test+"$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s: %v\n%s", test, err, out)
	}
	i := bytes.Index(out, []byte(tag+" "))
	if i < 0 {
		b.Fatalf("%s: no figures in\n%s", test, out)
	}
	fields := strings.Fields(string(out[i+len(tag):]))
	if len(fields) < n {
		b.Fatalf("%s: %d figures, want %d, in\n%s", test, len(fields), n, out)
	}
	fig := make([]float64, n)
	for j := range fig {
		if fig[j], err = strconv.ParseFloat(fields[j], 64); err != nil {
			b.Fatalf("%s: %v in\n%s", test, err, out)
		}
	}
	return fig
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// TestOpenChild is the child process of freshOpen; skipped otherwise.
func TestOpenChild(t *testing.T) {
	dir := os.Getenv(openChildDir)
	if dir == "" {
		t.Skip("the child process of BenchmarkOpen and BenchmarkScale")
	}
	before, start := cpuTime(t), time.Now()
	rep, err := replica.Open(replica.Config{Region: "bench", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	wall, cpu := time.Since(start), cpuTime(t)-before
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	// The child's own high-water mark: the Maxrss its parent gets from
	// wait4 counts the parent's pages the child shared before its exec.
	fmt.Printf("fresh-open %g %g %g\n", wall.Seconds(), cpu.Seconds(), procStatusMiB("VmHWM"))
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
	// With the log's head, as iamd's replicas have it: a bulk catch-up
	// (bulk.go), timed until its rows are written.
	head := func(context.Context) (uint64, error) { return uint64(benchEvents(users)), nil }
	rep, err := replica.Open(replica.Config{Region: "bench", Dir: dir, Head: head})
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
	start := time.Now()
	if err := rep.Flush(); err != nil {
		b.Fatal(err)
	}
	replay += time.Since(start)
	if err := rep.Close(); err != nil {
		b.Fatal(err)
	}
	return replay
}
