package replica_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// crashEvents is the size of the replays of the crash-resume property.
const crashEvents = 50_000

var workloads sync.Map // seed → *workload, built once per test binary

func sharedWorkload(tb testing.TB, seed uint64, events int) *workload {
	tb.Helper()
	key := fmt.Sprint(seed, "/", events)
	if w, ok := workloads.Load(key); ok {
		return w.(*workload)
	}
	w := newWorkload(tb, seed, events)
	workloads.Store(key, w)
	return w
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// appendWorkload appends w's entries to the log, one log message per
// entry: the first through Log.Append, the rest pipelined with the very same
// envelope (async publish keeps order on one connection and takes a second
// instead of many), and checks every sequence.
func appendWorkload(tb testing.TB, ctx context.Context, nc *nats.Conn, l *eventlog.Log, w *workload) {
	tb.Helper()
	const viaAppend = 200
	for _, e := range w.entries[:viaAppend] {
		seq, err := l.Append(ctx, eventlog.AppendRequest{Subject: e.Subject, Commits: e.Commits, MsgID: e.MsgID})
		if err != nil {
			tb.Fatal(err)
		}
		if seq != e.Seq {
			tb.Fatalf("appended at %d, want %d", seq, e.Seq)
		}
	}
	appendEntries(tb, nc, w.entries[viaAppend:])
	head, err := l.Head(ctx)
	if err != nil || head != uint64(len(w.entries)) {
		tb.Fatalf("log head %d (%v), want %d", head, err, len(w.entries))
	}
}

// replayLog feeds a fresh replica the whole log, read back from JetStream,
// in batches of batch entries.
func replayLog(tb testing.TB, ctx context.Context, l *eventlog.Log, rep *replica.Replica, batch int) {
	tb.Helper()
	var pending []iam.LogEntry
	err := l.Read(ctx, rep.Applied()+1, func(e iam.LogEntry) error {
		pending = append(pending, e)
		if len(pending) == batch {
			err := rep.ApplyEntries(pending)
			pending = pending[:0]
			return err
		}
		return nil
	})
	if err == nil {
		err = rep.ApplyEntries(pending)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// prefixChecker follows a scratch replay of the workload to any position,
// rebuilding it when asked for an earlier one.
type prefixChecker struct {
	w  *workload
	st *iam.State
	at uint64
}

func (p *prefixChecker) stateAt(seq uint64) *iam.State {
	if p.st == nil || seq < p.at {
		p.st, p.at = iam.NewState(), 0
	}
	for ; p.at < seq; p.at++ {
		mustApplyEntry(p.st, p.w.entries[p.at], nil)
	}
	return p.st
}

// requirePrefix fails unless rep's store and index hold exactly the state
// of the log's first Applied() entries: what "resumes from its stored
// sequence with the state of that prefix" means.
func (p *prefixChecker) requirePrefix(tb testing.TB, rep *replica.Replica, what string) {
	tb.Helper()
	requireRowsEqualState(tb, rep.Store(), p.stateAt(rep.Applied()), what+": store vs scratch replay of the same prefix")
	if _, err := rep.Read(context.Background(), replica.Consistency{}, func(st *iam.State) error {
		requireRowsEqualState(tb, rep.Store(), st, what+": store vs loaded index")
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

// TestReplica_CrashResume: a replica stopped at random points during a
// 50,000-event replay (projector stopped or its context cancelled; a
// subprocess killed with SIGKILL) resumes to a read model identical, key for
// key, to a fresh replay, and answers checks alike.
func TestReplica_CrashResume(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	w := sharedWorkload(t, 2026, crashEvents)
	total := uint64(len(w.entries))
	t.Logf("workload: %d events in %d entries: %v", w.events, total, w.kinds)

	s := eventlogtest.MustRunJetStream(t)
	nc := eventlogtest.MustConnect(t, s)
	l, err := eventlog.Open(ctx, nc, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	appendWorkload(t, ctx, nc, l, w)
	t.Logf("appended %d entries in %s", total, time.Since(start).Round(time.Millisecond))

	// The fresh replay everything is compared with, itself checked
	// against a scratch replay of the generated entries.
	start = time.Now()
	fresh := openReplica(t, replica.Config{Region: "fresh"})
	replayLog(t, ctx, l, fresh, 97)
	t.Logf("fresh replay in %s", time.Since(start).Round(time.Millisecond))
	prefix := &prefixChecker{w: w}
	prefix.requirePrefix(t, fresh, "fresh replay")
	if fresh.Applied() != total {
		t.Fatalf("fresh replay at %d, want %d", fresh.Applied(), total)
	}
	checks := w.checkSample(99, 3000)

	follow := func(rep *replica.Replica, maxBatch int) (*projector.Projector, context.CancelFunc) {
		p := projector.New(l, rep, rep.Region())
		p.MaxBatch = maxBatch
		p.Logger = quietLogger()
		pctx, cancel := context.WithCancel(ctx)
		if err := p.Start(pctx); err != nil {
			t.Fatal(err)
		}
		return p, cancel
	}
	finish := func(t *testing.T, dir string) {
		rep := openReplica(t, replica.Config{Region: "resumed", Dir: dir, Head: l.Head})
		prefix.requirePrefix(t, rep, "before the last resume")
		p, cancel := follow(rep, projector.DefaultMaxBatch)
		defer cancel()
		defer p.Stop()
		if err := rep.Ensure(ctx, replica.Consistency{Mode: replica.FullyConsistent, Wait: 60 * time.Second}); err != nil {
			t.Fatalf("resume to the head: %v", err)
		}
		p.Stop()
		if ok, err := p.Healthy(); !ok {
			t.Fatalf("projector unhealthy: %v", err)
		}
		requireSameStores(t, rep, fresh, "resumed vs fresh replay")
		requireSameChecks(t, rep, fresh, checks, "resumed vs fresh replay")
		prefix.requirePrefix(t, rep, "resumed")
	}

	t.Run("stop and cancel", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		dir := t.TempDir()
		var stops []uint64
		n := 6
		if testing.Short() {
			n = 3 // -short: fewer stops of the same 50,000-event replay
		}
		for range n {
			stops = append(stops, 1+rng.Uint64N(total-1))
		}
		slices.Sort(stops)
		var stopped uint64
		for i, target := range stops {
			rep, err := replica.Open(replica.Config{Region: "resumed", Dir: dir, Head: l.Head})
			if err != nil {
				t.Fatal(err)
			}
			// A clean stop loses nothing.
			if got := rep.Applied(); got != stopped {
				t.Fatalf("stop %d: reopened at %d, want %d", i, got, stopped)
			}
			prefix.requirePrefix(t, rep, fmt.Sprintf("stop %d", i))
			maxBatch := 1 + rng.IntN(projector.DefaultMaxBatch)
			p, cancel := follow(rep, maxBatch)
			if err := rep.WaitFor(ctx, target, 60*time.Second); err != nil {
				t.Fatalf("stop %d: %v", i, err)
			}
			if i%2 == 0 {
				p.Stop()
				cancel()
			} else {
				cancel() // the owner's context ends; Stop only waits
				p.Stop()
			}
			stopped = rep.Applied()
			t.Logf("stop %d: target %d, batch %d, stopped at %d", i, target, maxBatch, stopped)
			if err := rep.Close(); err != nil {
				t.Fatal(err)
			}
		}
		finish(t, dir)
	})

	t.Run("killed subprocess", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		dir := t.TempDir()
		var last uint64
		kills := 5
		if testing.Short() {
			kills = 3
		}
		for i := range kills {
			maxBatch := 1 + rng.IntN(projector.DefaultMaxBatch)
			// Most kills come once the child has applied past a random
			// target, or a random delay after it opened; one comes a
			// random delay after it started (while it opens and loads).
			var target uint64
			var delay time.Duration
			afterOpen := i != 1
			if i%2 == 0 {
				target = last + 1 + rng.Uint64N(max(1, (total-last)/2))
			} else {
				delay = time.Duration(rng.IntN(400)) * time.Millisecond
			}
			opened, printed, stderr := runAndKill(t, ctx, dir, s.ClientURL(), maxBatch, target, delay, afterOpen)

			rep, err := replica.Open(replica.Config{Region: "resumed", Dir: dir})
			if err != nil {
				t.Fatalf("kill %d: reopen: %v\nchild stderr:\n%s", i, err, stderr)
			}
			got := rep.Applied()
			// What was durable when the child started cannot be lost by
			// killing it; what it applied since may be (NoSync), but only
			// as a suffix: the store must be exactly the prefix at got.
			if opened >= 0 && got < uint64(opened) {
				t.Fatalf("kill %d: reopened at %d, below %d where the child started", i, got, opened)
			}
			if got > total {
				t.Fatalf("kill %d: reopened at %d, past the log's head %d", i, got, total)
			}
			prefix.requirePrefix(t, rep, fmt.Sprintf("kill %d", i))
			t.Logf("kill %d: batch %d, target %d, delay %s (after open: %v): child opened at %d, printed %d; reopened at %d",
				i, maxBatch, target, delay, afterOpen, opened, printed, got)
			last = got
			if err := rep.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if last == 0 {
			t.Fatal("the children made no durable progress at all")
		}
		finish(t, dir)
	})
}

const helperEnv = "IAM_REPLICA_HELPER"

// runAndKill starts this test binary as a replica following url into dir,
// and SIGKILLs it once it printed an applied position >= target (target >
// 0), or else delay after it started (or, with afterOpen, after it opened
// its replica). It returns the position the child opened at (-1 if it
// was killed before saying), the last position it printed, and its stderr.
func runAndKill(t *testing.T, ctx context.Context, dir, url string, maxBatch int, target uint64, delay time.Duration, afterOpen bool) (opened int64, printed uint64, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1",
		"IAM_HELPER_DIR="+dir, "IAM_HELPER_NATS="+url, "IAM_HELPER_BATCH="+strconv.Itoa(maxBatch))
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type line struct {
		kind string
		seq  uint64
	}
	lines := make(chan line, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			kind, n, ok := strings.Cut(sc.Text(), " ")
			if seq, err := strconv.ParseUint(n, 10, 64); ok && err == nil && (kind == "opened" || kind == "applied") {
				lines <- line{kind, seq}
			}
		}
	}()
	opened = -1
	var timer <-chan time.Time
	if target == 0 && !afterOpen {
		timer = time.After(delay)
	}
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait // the child exited by itself
			}
			if l.kind == "opened" {
				opened = int64(l.seq)
				printed = l.seq
				if target == 0 && afterOpen {
					timer = time.After(delay)
				}
			} else {
				printed = l.seq
			}
			if target > 0 && printed >= target {
				break wait
			}
		case <-timer:
			break wait
		case <-deadline:
			t.Errorf("child did not reach %d in 60s (printed %d)", target, printed)
			break wait
		}
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred Close, no flush
	for range lines {      // drain what it printed before dying
	}
	_ = cmd.Wait()
	return opened, printed, errBuf.String()
}

// TestHelperProcess is the replica process TestReplica_CrashResume kills.
// It runs only when re-executed with IAM_REPLICA_HELPER=1.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestReplica_CrashResume")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	maxBatch, _ := strconv.Atoi(os.Getenv("IAM_HELPER_BATCH"))
	nc, err := natsnode.ConnectURL(os.Getenv("IAM_HELPER_NATS"))
	if err != nil {
		fail(err)
	}
	l, err := eventlog.Open(ctx, nc, eventlog.Config{})
	if err != nil {
		fail(err)
	}
	rep, err := replica.Open(replica.Config{Region: "child", Dir: os.Getenv("IAM_HELPER_DIR")})
	if err != nil {
		fail(err)
	}
	fmt.Printf("opened %d\n", rep.Applied())
	p := projector.New(l, rep, "child")
	p.MaxBatch = maxBatch
	p.Logger = quietLogger()
	p.OnApplied = func(es []iam.LogEntry, _ time.Time) { fmt.Printf("applied %d\n", es[len(es)-1].Seq) }
	if err := p.Start(ctx); err != nil {
		fail(err)
	}
	// The parent kills this process; the bound only keeps an orphan from
	// living on if the parent dies first.
	time.Sleep(2 * time.Minute)
	fail(fmt.Errorf("not killed within 2 minutes"))
}

// TestReplica_CrashCloneResume: a replica whose machine "crashes" at random
// points during ApplyEntries (Pebble's crashable MemFS keeps what was synced
// and a random share of what was not) reopens at a position whose state is
// exactly that prefix of the log, and resumes — through a second crash — to
// a read model identical to a fresh replay.
func TestReplica_CrashCloneResume(t *testing.T) {
	t.Parallel()
	w := sharedWorkload(t, 4242, crashEvents)
	total := uint64(len(w.entries))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))

	fresh := openReplica(t, replica.Config{Region: "fresh", FS: vfs.NewMem(), Dir: "/fresh"})
	applyAll(t, fresh, w.entries, projector.DefaultMaxBatch)
	prefix := &prefixChecker{w: w}
	prefix.requirePrefix(t, fresh, "fresh replay")
	checks := w.checkSample(98, 2000)

	// applyRandomly applies entries from rep's position up to until in
	// random batch sizes, and meanwhile takes a crash clone of fs once the
	// replica has passed each of targets.
	applyRandomly := func(rep *replica.Replica, fs *vfs.MemFS, until uint64, targets []uint64, unsynced []int) []*vfs.MemFS {
		t.Helper()
		seed := rng.Uint64()
		done := make(chan error, 1)
		go func() {
			brng := rand.New(rand.NewPCG(seed, 0))
			for from := rep.Applied(); from < until; {
				to := min(from+1+brng.Uint64N(projector.DefaultMaxBatch), until)
				if err := rep.ApplyEntries(w.entries[from:to]); err != nil {
					done <- err
					return
				}
				from = to
			}
			done <- nil
		}()
		var clones []*vfs.MemFS
		for i, target := range targets {
			if err := rep.WaitFor(ctx, target, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			clones = append(clones, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced[i], RNG: rand.New(rand.NewPCG(seed, uint64(i)))}))
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return clones
	}

	fs := vfs.NewCrashableMem()
	rep := openReplica(t, replica.Config{Region: "crashy", FS: fs, Dir: "/r"})
	unsynced := []int{0, 100, 50, 10}
	var targets []uint64
	for range unsynced {
		targets = append(targets, 1+rng.Uint64N(total-1))
	}
	slices.Sort(targets)
	clones := applyRandomly(rep, fs, total, targets, unsynced)
	requireSameStores(t, rep, fresh, "uncrashed replica")

	for i, clone := range clones {
		t.Run(fmt.Sprintf("crash %d at %d with %d%% unsynced", i, targets[i], unsynced[i]), func(t *testing.T) {
			r, err := replica.Open(replica.Config{Region: "crashed", FS: clone, Dir: "/r"})
			if err != nil {
				t.Fatalf("reopen after the crash: %v", err)
			}
			defer r.Close()
			at := r.Applied()
			prefix.requirePrefix(t, r, "after the crash")
			// Resume, and crash once more on the way: with what the
			// second crash kept, resume to the head.
			second := at + 1 + rng.Uint64N(total-at-1)
			again := applyRandomly(r, clone, min(second+2*projector.DefaultMaxBatch, total), []uint64{second}, []int{unsynced[(i+1)%len(unsynced)]})

			r2, err := replica.Open(replica.Config{Region: "crashed-twice", FS: again[0], Dir: "/r"})
			if err != nil {
				t.Fatalf("reopen after the second crash: %v", err)
			}
			defer r2.Close()
			at2 := r2.Applied()
			if at2 < at {
				t.Fatalf("second crash reopened at %d, before %d where it resumed", at2, at)
			}
			prefix.requirePrefix(t, r2, "after the second crash")
			applyAll(t, r2, w.entries, 333)
			requireSameStores(t, r2, fresh, "resumed twice vs fresh replay")
			requireSameChecks(t, r2, fresh, checks, "resumed twice vs fresh replay")
			t.Logf("crashed at ~%d → reopened at %d; crashed again at ~%d → reopened at %d", targets[i], at, second, at2)
		})
	}
}
