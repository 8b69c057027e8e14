package replica_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// benchDirs are removed when the test binary ends (BenchmarkCheck keeps
// its replica open across the benchmark's runs).
var (
	benchDirsMu sync.Mutex
	benchDirs   []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchDirsMu.Lock()
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	benchDirsMu.Unlock()
	os.Exit(code)
}

func benchDir(tb testing.TB) string {
	d, err := os.MkdirTemp("", "iam-replica-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	benchDirsMu.Lock()
	benchDirs = append(benchDirs, d)
	benchDirsMu.Unlock()
	return d
}

// Shape of the benchmark realm: every user is in 2 groups (400 groups of
// exactly 500, the limit) and has 8 policies attached directly; every group
// has 2 policies: 10 or more policies (30+ statements) reach each user, and
// 1M+ attachment and membership edges are stored.
const (
	benchRealm          = "bench"
	benchPolicies       = 1000
	benchGroups         = 400
	benchGroupsPerUser  = 2
	benchPoliciesPerUse = 8
	benchGroupPolicies  = 2
)

func benchCat(p int) string { return "hrn:here:data::" + benchRealm + ":cat-" + strconv.Itoa(p) }

// benchData is the benchmark log: one event per entry, as a writer that does
// not group commits would append it.
type benchData struct {
	entries []iam.LogEntry
	users   int
}

func newBenchData(users int) *benchData {
	d := &benchData{users: users, entries: make([]iam.LogEntry, 0, benchEvents(users))}
	benchLog(users, func(e iam.LogEntry) { d.entries = append(d.entries, e) })
	return d
}

// benchGroupCount is how many groups the benchmark realm has: 400, or as
// many as hold users of 500 each (the group size limit) at 2 groups a user.
func benchGroupCount(users int) int {
	return max(benchGroups, users*benchGroupsPerUser/500)
}

// benchEvents is how many events (and entries) benchLog makes.
func benchEvents(users int) int {
	return 1 + benchPolicies + benchGroupCount(users)*(1+benchGroupPolicies) + users*(1+benchGroupsPerUser+benchPoliciesPerUse)
}

// benchGrants is how many attachment and membership edges benchLog makes.
func benchGrants(users int) int {
	return users*(benchGroupsPerUser+benchPoliciesPerUse) + benchGroupCount(users)*benchGroupPolicies
}

// benchLog hands fn the benchmark log of users users, entry by entry, so
// that a log larger than memory allows can be streamed (BenchmarkScale).
func benchLog(users int, fn func(iam.LogEntry)) {
	in := iam.InRealm{Realm: benchRealm}
	groups := benchGroupCount(users)
	seq := uint64(0)
	add := func(ev iam.Event) {
		seq++
		at := baseTime.Add(time.Duration(seq) * time.Microsecond)
		fn(iam.LogEntry{Seq: seq, Subject: "iam.evt.bench.commit", MsgID: "b" + strconv.FormatUint(seq, 10), Time: at,
			Commits: []iam.Commit{{Events: []iam.Event{ev}, At: at}}})
	}
	add(iam.RealmCreated{InRealm: in, Name: "Bench"})
	for p := range benchPolicies {
		add(iam.PolicyCreated{InRealm: in, ID: "p" + strconv.Itoa(p), Name: "Policy " + strconv.Itoa(p), Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"read", "list"}, Resources: []string{benchCat(p), benchCat(p) + "/*"}},
			{Effect: iam.Allow, Actions: []string{"write"}, Resources: []string{benchCat(p) + "/shared/*"}},
			{Effect: iam.Deny, Actions: []string{"*"}, Resources: []string{benchCat(p) + "/locked"}},
		}})
	}
	for g := range groups {
		add(iam.GroupCreated{InRealm: in, ID: "g" + strconv.Itoa(g), Name: "Group " + strconv.Itoa(g)})
		for k := range benchGroupPolicies {
			add(iam.PolicyAttached{InRealm: in, Policy: "p" + strconv.Itoa((g*37+k*501)%benchPolicies), Target: "g" + strconv.Itoa(g)})
		}
	}
	for u := range users {
		id := "u" + strconv.Itoa(u)
		add(iam.IdentityCreated{InRealm: in, ID: id, Kind: iam.KindUser, Email: id + "@example.com", Name: "User " + id})
		for k := range benchGroupsPerUser {
			add(iam.MemberAdded{InRealm: in, Group: "g" + strconv.Itoa((u*benchGroupsPerUser+k)%groups), Identity: id})
		}
		for _, p := range benchUserPolicies(u) {
			add(iam.PolicyAttached{InRealm: in, Policy: "p" + strconv.Itoa(p), Target: id})
		}
	}
}

// benchUserPolicies are the policies attached directly to user u.
func benchUserPolicies(u int) []int {
	out := make([]int, benchPoliciesPerUse)
	for k := range out {
		out[k] = (u*7 + k*131) % benchPolicies
	}
	return out
}

func (d *benchData) events() int {
	n := 0
	for _, e := range d.entries {
		for _, c := range e.Commits {
			n += len(c.Events)
		}
	}
	return n
}

// history reads d's log as Config.History does.
func (d *benchData) history(_ context.Context, from, to uint64, fn func(iam.LogEntry) error) error {
	for _, e := range d.entries[from-1 : to] {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

const replayBatch = 512

// BenchmarkReplay replays ~1.1M events (100k users, their 200k group
// memberships and 800k policy attachments) into an empty replica through
// ApplyEntries in batches of 512, with the default checkpoints, a log to
// read (Config.History) and its head (Config.Head), as iamd has: so as a
// bulk catch-up (bulk.go), timed until its rows are written (Flush). Run
// with -benchtime=1x.
func BenchmarkReplay(b *testing.B) {
	d := newBenchData(100_000)
	events := d.events()
	var total, closing, flushing time.Duration
	var used usage
	var compactions int64
	var nfiles int
	for b.Loop() {
		b.StopTimer()
		dir := benchDir(b)
		// The log's head, as a projector's replica knows it: far enough
		// ahead for a bulk catch-up (bulk.go).
		head := func(context.Context) (uint64, error) { return uint64(len(d.entries)), nil }
		rep, err := replica.Open(replica.Config{Region: "bench", Dir: filepath.Join(dir, "r"), History: d.history, Head: head})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, used0 := time.Now(), processUsage()
		timed(func() {
			for from := 0; from < len(d.entries); from += replayBatch {
				if err := rep.ApplyEntries(d.entries[from:min(from+replayBatch, len(d.entries))]); err != nil {
					b.Fatal(err)
				}
			}
			// Timed until the read model on disk holds it all.
			flushStart := time.Now()
			if err := rep.Flush(); err != nil {
				b.Fatal(err)
			}
			flushing += time.Since(flushStart)
		})
		total += time.Since(start)
		used.add(used0)
		_, c := replica.StoreLevels(rep.Store())
		compactions += c
		b.StopTimer()
		closeStart := time.Now()
		if err := rep.Close(); err != nil {
			b.Fatal(err)
		}
		closing += time.Since(closeStart)
		files, _ := os.ReadDir(replica.CheckpointDir(filepath.Join(dir, "r")))
		nfiles += len(files)
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(events)*float64(b.N)/total.Seconds(), "events/s")
	// The rows' walk and ingest (bulk.go), within the timed part.
	b.ReportMetric(flushing.Seconds()/float64(b.N), "flush-s/op")
	b.ReportMetric(closing.Seconds()/float64(b.N), "close-s/op")
	b.ReportMetric(float64(nfiles)/float64(b.N), "files/op")
	b.ReportMetric(float64(events), "events")
	// A replay into a fresh process (the first of a run) faults in its
	// heap, a later one reuses it.
	used.report(b)
	// Compactions finished within the timed part (compaction.go holds
	// them back while the replica catches up).
	b.ReportMetric(float64(compactions)/float64(b.N), "compactions/op")
}

// timed runs fn, a benchmark's timed part, under the pprof label
// bench=timed: a profile of the whole benchmark (-test.cpuprofile) then
// narrows to it with go tool pprof -tagfocus bench=timed, setup left out.
// Pebble runs its flushes and compactions under labels of its own, so
// they are left out too: look them up by theirs (-tags).
func timed(fn func()) {
	pprof.Do(context.Background(), pprof.Labels("bench", "timed"), func(context.Context) { fn() })
}

// BenchmarkReplayIndex is BenchmarkReplay's log applied to the index
// alone: State.ApplyEntry for each entry, told each change as the replica
// is, and an index (State.Snapshot) every 8,000 entries as a catch-up
// takes one (every DefaultCheckpointEvery entries, one checkpoint in
// eight), each dropped at the next; no row is built and nothing written.
// Against BenchmarkRawPebble it says how much of the replay's time the
// domain's own work leaves to Pebble. Run with -benchtime=1x.
func BenchmarkReplayIndex(b *testing.B) {
	d := newBenchData(100_000)
	events := d.events()
	const indexEvery = 8 * replica.DefaultCheckpointEvery
	var touched []iam.Change
	touch := func(c iam.Change) {
		if n := len(touched); n == 0 || touched[n-1] != c {
			touched = append(touched, c)
		}
	}
	var total time.Duration
	var used usage
	var readers sync.RWMutex
	for b.Loop() {
		st := iam.NewState()
		var index *iam.State
		start, used0 := time.Now(), processUsage()
		timed(func() {
			for i, e := range d.entries {
				if err := st.ApplyEntry(e, touch); err != nil {
					b.Fatal(err)
				}
				if (i+1)%replayBatch == 0 {
					clear(touched)
					touched = touched[:0]
				}
				if uint64(i+1)%indexEvery == 0 {
					index = st.Snapshot(&readers)
				}
			}
		})
		total += time.Since(start)
		used.add(used0)
		if index == nil || index.Seq() != uint64(len(d.entries)/indexEvery*indexEvery) {
			b.Fatal("no index at the last stride")
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/total.Seconds(), "events/s")
	used.report(b)
}

// usage is what the process has used so far: CPU time (user and system)
// and the page faults that needed no I/O. On a shared machine what a replay
// costs in CPU moves less with the load than its wall time does; it counts
// every goroutine, Pebble's flushes and compactions and the GC included.
// System time is mostly those faults: on this VM a first touch of a page
// costs more than a check, and Go backs its heap with huge pages only where
// transparent huge pages are "always", not "madvise" as here.
type usage struct {
	cpu, sys time.Duration
	faults   int64
}

func processUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), sys: time.Duration(ru.Stime.Nano()), faults: ru.Minflt}
}

// add adds what the process used since then.
func (u *usage) add(since usage) {
	now := processUsage()
	u.cpu += now.cpu - since.cpu
	u.sys += now.sys - since.sys
	u.faults += now.faults - since.faults
}

// report reports u over n runs.
func (u usage) report(b *testing.B) {
	b.ReportMetric(u.cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(u.sys.Seconds()/float64(b.N), "sys-s/op")
	b.ReportMetric(float64(u.faults)/float64(b.N), "page-faults/op")
}

// BenchmarkRawPebble writes the very rows the replay writes — the same keys
// and values in the same batches (one per 512-entry ApplyEntries call,
// plus the position), NoSync — straight to Pebble with the Store's options
// (64 MiB cache, Pebble's defaults otherwise, the WAL on): the ceiling for
// BenchmarkReplay. Rows are computed up front, outside the timer. What the
// replay does besides, and this does not: a batch is split where a
// checkpoint falls (about 200 more batches among 2,150), a Pebble snapshot
// is held at each checkpoint, and the position's value also holds the
// message id.
func BenchmarkRawPebble(b *testing.B) {
	d := newBenchData(100_000)
	events := d.events()
	type kv struct {
		k, v []byte
		del  bool
	}
	var batches [][]kv
	keys := 0
	st := iam.NewState()
	for from := 0; from < len(d.entries); from += replayBatch {
		var order []string
		seen := map[string]bool{}
		for _, e := range d.entries[from:min(from+replayBatch, len(d.entries))] {
			mustApplyEntry(st, e, func(c iam.Change) {
				if k := replica.RowKey(c); !seen[k] {
					seen[k] = true
					order = append(order, k)
				}
			})
		}
		batch := make([]kv, 0, len(order))
		for _, k := range order {
			v, ok := replica.Row(st, k)
			batch = append(batch, kv{k: []byte(k), v: v, del: !ok})
		}
		keys += len(batch)
		batches = append(batches, batch)
	}
	d = nil
	runtime.GC()
	var total time.Duration
	var used usage
	var compactions int64
	for b.Loop() {
		b.StopTimer()
		dir := benchDir(b)
		cache := pebble.NewCache(64 << 20)
		db, err := pebble.Open(filepath.Join(dir, "raw"), replica.PebbleOptions(cache))
		cache.Unref()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, used0 := time.Now(), processUsage()
		timed(func() {
			var pos [8]byte
			for i, batch := range batches {
				wb := db.NewBatch()
				for _, c := range batch {
					if c.del {
						err = wb.Delete(c.k, nil)
					} else {
						err = wb.Set(c.k, c.v, nil)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				pos[7] = byte(i)
				if err := wb.Set([]byte("\xffapplied"), pos[:], nil); err != nil {
					b.Fatal(err)
				}
				if err := wb.Commit(pebble.NoSync); err != nil {
					b.Fatal(err)
				}
				wb.Close()
			}
		})
		total += time.Since(start)
		used.add(used0)
		compactions += db.Metrics().Compact.Count
		b.StopTimer()
		db.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(keys)*float64(b.N)/total.Seconds(), "keys/s")
	b.ReportMetric(float64(events)*float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(keys), "keys")
	used.report(b)
	b.ReportMetric(float64(compactions)/float64(b.N), "compactions/op")
}

// checkBench is the replica BenchmarkCheck asks, built once per process:
// replayed from the benchmark log, closed, and reopened, so that its index
// is loaded from Pebble as at a restart.
var checkBench struct {
	once    sync.Once
	rep     *replica.Replica
	users   int
	edges   int
	build   time.Duration
	load    time.Duration
	rssMiB  float64
	heapMiB float64
	err     error
}

func vmRSSMiB() float64 { return procStatusMiB("VmRSS") }

// procStatusMiB returns the field of /proc/self/status given in kB (VmRSS,
// VmHWM), in MiB; -1 where there is none.
func procStatusMiB(field string) float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

func checkReplica(b *testing.B) *replica.Replica {
	checkBench.once.Do(func() {
		const users = 100_000
		dir := filepath.Join(benchDir(b), "r")
		start := time.Now()
		d := newBenchData(users)
		rep, err := replica.Open(replica.Config{Region: "bench", Dir: dir})
		if err != nil {
			checkBench.err = err
			return
		}
		for from := 0; from < len(d.entries); from += replayBatch {
			if err := rep.ApplyEntries(d.entries[from:min(from+replayBatch, len(d.entries))]); err != nil {
				checkBench.err = err
				return
			}
		}
		if err := rep.Close(); err != nil {
			checkBench.err = err
			return
		}
		checkBench.build = time.Since(start)
		d = nil
		runtime.GC()
		debug.FreeOSMemory()
		start = time.Now()
		if checkBench.rep, err = replica.Open(replica.Config{Region: "bench", Dir: dir}); err != nil {
			checkBench.err = err
			return
		}
		checkBench.load = time.Since(start)
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		checkBench.rssMiB, checkBench.heapMiB = vmRSSMiB(), float64(ms.HeapInuse)/(1<<20)
		checkBench.users = users
		checkBench.edges = benchGrants(users)
	})
	if checkBench.err != nil {
		b.Fatal(checkBench.err)
	}
	return checkBench.rep
}

// benchQueries are unscoped checks of random users: a third on a resource
// one of their policies allows exactly, a third under an allowed prefix
// (some of them explicitly denied), a third on a resource nothing allows —
// the worst case, which evaluates every statement that reaches the user.
func benchQueries(users, n int) []iam.CheckRequest {
	rng := rand.New(rand.NewPCG(1, 1))
	actions := []string{"read", "list", "write", "delete"}
	out := make([]iam.CheckRequest, n)
	for i := range out {
		u := rng.IntN(users)
		p := benchUserPolicies(u)[rng.IntN(benchPoliciesPerUse)]
		q := iam.CheckRequest{Realm: benchRealm, Subject: "u" + strconv.Itoa(u), Action: actions[rng.IntN(len(actions))]}
		switch rng.IntN(6) {
		case 0, 1:
			q.Resource = benchCat(p)
		case 2:
			q.Resource = benchCat(p) + "/shared/doc-" + strconv.Itoa(rng.IntN(100))
		case 3:
			q.Resource = benchCat(p) + "/locked"
		default:
			q.Resource = benchCat(benchPolicies + rng.IntN(1000))
		}
		out[i] = q
	}
	return out
}

// BenchmarkCheck measures in-process Replica.Check (minimize_latency) from
// parallel goroutines on 100k users reached by 1M+ grants. Run with
// -benchtime 2s (and -cpu 2 for the two-core figure).
func BenchmarkCheck(b *testing.B) {
	rep := checkReplica(b)
	qs := benchQueries(checkBench.users, 1<<16)
	c := replica.Consistency{Mode: replica.MinimizeLatency}
	ctx := context.Background()
	var (
		mu      sync.Mutex
		samples []time.Duration
		allowed int
		seed    uint64
	)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		seed++
		i := int(seed * 7919)
		mu.Unlock()
		var mine []time.Duration
		ok, n := 0, 0
		for pb.Next() {
			q := qs[i%len(qs)]
			i++
			n++
			if n%8 == 0 {
				t0 := time.Now()
				d, _, err := rep.Check(ctx, q, c)
				mine = append(mine, time.Since(t0))
				if err != nil {
					b.Error(err)
					return
				}
				if d.Allowed {
					ok++
				}
				continue
			}
			if _, _, err := rep.Check(ctx, q, c); err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		samples = append(samples, mine...)
		allowed += ok
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	if len(samples) > 0 {
		slices.Sort(samples)
		pct := func(p float64) float64 {
			return float64(samples[min(len(samples)-1, int(p*float64(len(samples))))].Nanoseconds()) / 1e3
		}
		b.ReportMetric(pct(0.50), "p50-µs")
		b.ReportMetric(pct(0.99), "p99-µs")
		b.ReportMetric(pct(0.999), "p99.9-µs")
		b.ReportMetric(float64(allowed)/float64(len(samples)), "allowed-ratio")
	}
	b.ReportMetric(checkBench.rssMiB, "RSS-MiB")
	b.ReportMetric(checkBench.heapMiB, "heap-MiB")
	b.ReportMetric(float64(checkBench.edges), "grant-edges")
	b.ReportMetric(checkBench.load.Seconds(), "open-s")
	if b.N > 1 {
		b.Logf("state: %d users, %d grant edges; built in %s, reopened (index loaded) in %s; RSS %.0f MiB (heap in use %.0f MiB); GOMAXPROCS %d",
			checkBench.users, checkBench.edges, checkBench.build.Round(time.Millisecond), checkBench.load.Round(time.Millisecond),
			checkBench.rssMiB, checkBench.heapMiB, runtime.GOMAXPROCS(0))
	}
}
