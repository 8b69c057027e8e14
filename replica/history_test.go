package replica_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/replica"
)

// rowsDigest is a digest of every row of st.
func rowsDigest(tb testing.TB, st *iam.State) string {
	h := sha256.New()
	if err := replica.Rows(st, func(k string, v []byte) error {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(v)
		h.Write([]byte{0})
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestReplica_StateAt: the state at every position, built from thinned
// checkpoints and a replay while the projector goes on applying, holds the
// rows a fresh replay to that position holds; the checkpoints stay bounded.
// So it does whether the checkpoints hold their index (forked by each
// build), some of them do within a memory bound, or none does (each build
// loads rows).
func TestReplica_StateAt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int64
	}{{"indexes", 0}, {"some indexes", 75 << 10}, {"rows only", -1}} {
		t.Run(tc.name, func(t *testing.T) { testStateAt(t, tc.memory) })
	}
}

func testStateAt(t *testing.T, memory int64) {
	d := newBenchData(60) // ~3k entries
	want := make([]string, len(d.entries)+1)
	fresh := iam.NewState()
	want[0] = rowsDigest(t, fresh)
	for i, e := range d.entries {
		if err := fresh.ApplyEntry(e, nil); err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 || i == len(d.entries)-1 {
			want[e.Seq] = rowsDigest(t, fresh)
		}
	}
	const maxCheckpoints = 6
	rep, err := replica.Open(replica.Config{Region: "h", Dir: filepath.Join(t.TempDir(), "r"), History: d.history,
		CheckpointEvery: 50, MaxCheckpoints: maxCheckpoints, HistoryCache: 2, CheckpointMemory: memory})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()

	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(d.entries); i += 64 {
			if err := rep.ApplyEntries(d.entries[i:min(i+64, len(d.entries))]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	// While applying: whatever is applied can be asked for.
	for seq := uint64(1); seq < uint64(len(d.entries)); seq += 97 {
		if err := rep.WaitFor(ctx, seq, 10e9); err != nil {
			t.Fatal(err)
		}
		st, err := rep.StateAt(ctx, seq)
		if err != nil {
			t.Fatalf("state at %d: %v", seq, err)
		}
		if got := rowsDigest(t, st); st.Seq() != seq || got != want[seq] {
			t.Fatalf("state at %d (seq %d): rows digest %s, want %s", seq, st.Seq(), got, want[seq])
		}
	}
	wg.Wait()
	cps := rep.Checkpoints()
	if len(cps) > maxCheckpoints || len(cps) == 0 {
		t.Errorf("checkpoints %v: got %d, want 1 to %d", cps, len(cps), maxCheckpoints)
	}
	// A fast apply is a catch-up, which defers most indexes to the
	// persister: the reads above were answered from those it took.
	caughtUp := replica.IndexedCheckpoints(rep)
	if err := replica.BuildDeferredIndexes(rep); err != nil {
		t.Fatal(err)
	}
	indexed := replica.IndexedCheckpoints(rep)
	switch {
	case memory == 0 && !slices.Equal(indexed, cps):
		t.Errorf("indexed checkpoints %v, want all of %v", indexed, cps)
	case memory < 0 && len(indexed) > 0:
		t.Errorf("indexed checkpoints %v, want none", indexed)
	case memory > 0 && (len(indexed) == 0 || len(indexed) == len(cps) || indexed[len(indexed)-1] != cps[len(cps)-1]):
		t.Errorf("indexed checkpoints %v of %v: want some, not all, the newest among them", indexed, cps)
	}
	for seq, w := range want {
		if w == "" || seq == 0 {
			continue
		}
		st, err := rep.StateAt(ctx, uint64(seq))
		if err != nil {
			t.Fatalf("state at %d: %v", seq, err)
		}
		if got := rowsDigest(t, st); got != w {
			t.Fatalf("state at %d after applying all: rows digest %s, want %s", seq, got, w)
		}
	}
	if _, err := rep.StateAt(ctx, uint64(len(d.entries))+1); iam.ErrorCode(err) != iam.EInvalid {
		t.Errorf("state past the applied position: got %v, want invalid_argument", err)
	}
	t.Logf("%d entries, checkpoints %v, indexed %v (%v before the deferred ones were built)", len(d.entries), cps, indexed, caughtUp)
}

// historyFixture is a log with the rows digest of the state at every
// 37th position, as a fresh replay gives them.
type historyFixture struct {
	d    *benchData
	want map[uint64]string
}

func newHistoryFixture(t *testing.T) historyFixture {
	f := historyFixture{d: newBenchData(60), want: map[uint64]string{}}
	fresh := iam.NewState()
	for i, e := range f.d.entries {
		if err := fresh.ApplyEntry(e, nil); err != nil {
			t.Fatal(err)
		}
		if i%37 == 0 || i == len(f.d.entries)-1 {
			f.want[e.Seq] = rowsDigest(t, fresh)
		}
	}
	return f
}

func (f historyFixture) open(t *testing.T, dir string) *replica.Replica {
	return f.openWith(t, dir, func(*replica.Config) {})
}

// openWith is open with the config changed by change.
func (f historyFixture) openWith(t *testing.T, dir string, change func(*replica.Config)) *replica.Replica {
	cfg := replica.Config{Region: "h", Dir: dir, History: f.d.history, CheckpointEvery: 50, MaxCheckpoints: 8, HistoryCache: 1}
	change(&cfg)
	rep, err := replica.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (f historyFixture) apply(t *testing.T, rep *replica.Replica, upTo int) {
	for i := int(rep.Applied()); i < upTo; i += 64 {
		if err := rep.ApplyEntries(f.d.entries[i:min(i+64, upTo)]); err != nil {
			t.Fatal(err)
		}
	}
}

// reopenKeeps closes rep, opens the read model in dir again, checks that
// it holds the same checkpoints and answers every position as before, and
// returns it for the caller to close.
func (f historyFixture) reopenKeeps(t *testing.T, rep *replica.Replica, dir string) *replica.Replica {
	t.Helper()
	want := rep.Checkpoints()
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	rep = f.open(t, dir)
	if got := rep.Checkpoints(); !slices.Equal(got, want) {
		rep.Close()
		t.Fatalf("checkpoints after reopening: got %v, want %v", got, want)
	}
	f.verify(t, rep)
	return rep
}

// openWithOlderFiles opens a replica in dir whose persister is stopped and
// whose Close writes no file, applies the whole log, and writes the files
// of the checkpoints of its first third only.
func (f historyFixture) openWithOlderFiles(t *testing.T, dir string) *replica.Replica {
	t.Helper()
	rep := f.openWith(t, dir, func(c *replica.Config) { c.PersistAtClose = -1 })
	replica.StopPersister(rep)
	f.apply(t, rep, len(f.d.entries)/3)
	if err := replica.PersistCheckpoints(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	f.apply(t, rep, len(f.d.entries))
	return rep
}

// verify asks rep for the state at every recorded position up to its own.
func (f historyFixture) verify(t *testing.T, rep *replica.Replica) {
	t.Helper()
	for seq, w := range f.want {
		if seq > rep.Applied() {
			continue
		}
		st, err := rep.StateAt(context.Background(), seq)
		if err != nil {
			t.Fatalf("state at %d: %v", seq, err)
		}
		if got := rowsDigest(t, st); got != w {
			t.Fatalf("state at %d: rows digest %s, want %s", seq, got, w)
		}
	}
}

// TestReplica_CheckpointsSurviveRestart: the checkpoints are on disk, so
// a reopened replica starts with the same ones and answers every past
// position as before, from their files and once it has rebuilt their
// indexes from the log, the live index then replaced by the rebuilt one;
// a log that grows past them goes on adding more.
func TestReplica_CheckpointsSurviveRestart(t *testing.T) {
	f := newHistoryFixture(t)
	dir := filepath.Join(t.TempDir(), "r")
	rep := f.open(t, dir)
	half := len(f.d.entries) / 2
	f.apply(t, rep, half)
	before := rep.Checkpoints()
	rep = f.reopenKeeps(t, rep, dir)
	defer rep.Close()
	replica.WaitWarm(rep)
	if got := replica.IndexedCheckpoints(rep); !slices.Equal(got, before) {
		t.Fatalf("checkpoints holding an index once warm: got %v, want %v", got, before)
	}
	f.verify(t, rep)
	f.apply(t, rep, len(f.d.entries))
	if got := rep.Checkpoints(); got[len(got)-1] <= before[len(before)-1] {
		t.Errorf("checkpoints after applying the rest: got %v, want some after %v", got, before)
	}
	f.verify(t, rep)
	last := uint64(len(f.d.entries))
	var live string
	if _, err := rep.Read(context.Background(), replica.Consistency{Mode: replica.MinimizeLatency}, func(st *iam.State) error {
		live = rowsDigest(t, st)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if live != f.want[last] {
		t.Errorf("live index after the warm-up and the rest of the log: rows digest %s, want %s", live, f.want[last])
	}
}

// TestReplica_CheckpointFilesNewestFirst: the checkpoint files the
// persister has not reached are written newest first, and no more than a
// context allows (Close's is PersistAtClose): a write it cuts short leaves
// nothing behind. What is left without a file is then the oldest history,
// which the next Open fills in from the log; every past position is
// answered as before throughout.
func TestReplica_CheckpointFilesNewestFirst(t *testing.T) {
	f := newHistoryFixture(t)
	dir := filepath.Join(t.TempDir(), "r")
	rep := f.openWith(t, dir, func(c *replica.Config) { c.PersistAtClose = -1 })
	replica.StopPersister(rep)
	f.apply(t, rep, len(f.d.entries)/2)
	taken := rep.Checkpoints()
	if len(taken) < 3 {
		t.Fatalf("checkpoints taken: %v, want 3 or more", taken)
	}
	newest := replica.CheckpointName(taken[len(taken)-1])

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := replica.PersistCheckpoints(ended, rep); !errors.Is(err, context.Canceled) {
		t.Fatalf("persist with an ended context: %v, want context.Canceled", err)
	}
	if got := checkpointFiles(t, dir); len(got) != 0 {
		t.Fatalf("files after a persist whose context had ended: %v, want none", got)
	}

	// A context that ends once the first file is there: the second is cut
	// short at its first look at it.
	cut := &endsWithFiles{Context: context.Background(), t: t, dir: dir, files: 1}
	if err := replica.PersistCheckpoints(cut, rep); !errors.Is(err, context.Canceled) {
		t.Fatalf("persist cut short: %v, want context.Canceled", err)
	}
	if got := checkpointFiles(t, dir); !slices.Equal(got, []string{newest}) {
		t.Fatalf("files after a persist cut short: %v, want only the newest checkpoint's, %s", got, newest)
	}
	f.verify(t, rep)
	if err := rep.Close(); err != nil { // PersistAtClose -1: writes none
		t.Fatal(err)
	}
	if got := checkpointFiles(t, dir); !slices.Equal(got, []string{newest}) {
		t.Fatalf("files after Close with no time to write: %v, want only %s", got, newest)
	}

	rep = f.open(t, dir)
	defer rep.Close()
	if got := rep.Checkpoints(); len(got) == 0 || got[len(got)-1] != taken[len(taken)-1] {
		t.Fatalf("checkpoints after reopening: %v, want the newest, %d, last", got, taken[len(taken)-1])
	}
	f.verify(t, rep)
	eventlogtest.Eventually(t, 30*time.Second, "checkpoints before the newest filled in from the log", func() bool {
		cps := rep.Checkpoints()
		return len(cps) > 1 && cps[0] == 50
	})
	f.verify(t, rep)
}

// checkpointFiles lists what is in the checkpoint directory of the read
// model in dir, temporary files included.
func checkpointFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(replica.CheckpointDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// endsWithFiles is a context that has ended once the checkpoint
// directory of the read model in dir holds files checkpoint files.
type endsWithFiles struct {
	context.Context
	t     *testing.T
	dir   string
	files int
}

func (c *endsWithFiles) Err() error {
	if len(checkpointFileSeqs(c.t, c.dir)) >= c.files {
		return context.Canceled
	}
	return nil
}

// checkpointFileSeqs are the positions of the checkpoint files of the read
// model in dir, ascending.
func checkpointFileSeqs(t *testing.T, dir string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, name := range checkpointFiles(t, dir) {
		if seq, ok := replica.CheckpointSeq(name); ok {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

// TestReplica_FillsGapsBetweenFiles: checkpoints left without a file
// between two that have one (a Close cut short after older files were
// written) are filled in from the log at the next Open, starting from the
// older file; every past position is answered as before throughout.
func TestReplica_FillsGapsBetweenFiles(t *testing.T) {
	f := newHistoryFixture(t)
	dir := filepath.Join(t.TempDir(), "r")
	rep := f.openWithOlderFiles(t, dir)
	have := len(checkpointFileSeqs(t, dir)) // the older ones thinning kept
	cut := &endsWithFiles{Context: context.Background(), t: t, dir: dir, files: have + 1}
	if err := replica.PersistCheckpoints(cut, rep); !errors.Is(err, context.Canceled) {
		t.Fatalf("persist cut short: %v, want context.Canceled", err)
	}
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	files := checkpointFileSeqs(t, dir)
	if len(files) < 2 {
		t.Fatalf("checkpoint files: %v, want an older one and the newest", files)
	}
	older, newest := files[len(files)-2], files[len(files)-1]
	if newest-older < uint64(len(f.d.entries))/2 {
		t.Fatalf("checkpoint files %v: no gap to fill between the last two", files)
	}

	rep = f.open(t, dir)
	f.verify(t, rep)
	eventlogtest.Eventually(t, 30*time.Second, "checkpoints filled in between the last two files", func() bool {
		return slices.ContainsFunc(rep.Checkpoints(), func(seq uint64) bool { return seq > older && seq < newest })
	})
	f.verify(t, rep)
	f.reopenKeeps(t, rep, dir).Close()
}

// TestReplica_FillsTheTailAfterItsLastFile: checkpoints after the last
// file (none written for them, as when a process dies after a catch-up)
// are filled in at the next Open from that file to the read model's
// position.
func TestReplica_FillsTheTailAfterItsLastFile(t *testing.T) {
	f := newHistoryFixture(t)
	dir := filepath.Join(t.TempDir(), "r")
	rep := f.openWithOlderFiles(t, dir)
	if err := rep.Close(); err != nil { // writes none of the later ones
		t.Fatal(err)
	}
	files := checkpointFileSeqs(t, dir)
	if len(files) == 0 || files[len(files)-1] > uint64(len(f.d.entries))/3 {
		t.Fatalf("checkpoint files: %v, want only some within the first third", files)
	}
	last := files[len(files)-1]

	rep = f.open(t, dir)
	defer rep.Close()
	f.verify(t, rep)
	eventlogtest.Eventually(t, 30*time.Second, "checkpoints filled in after the last file", func() bool {
		return slices.ContainsFunc(rep.Checkpoints(), func(seq uint64) bool { return seq > last })
	})
	f.verify(t, rep)
}

// TestReplica_JoinedFillsHistory: a replica loaded from a snapshot has no
// checkpoint before it; it answers past positions at once (replayed from
// the first entry), fills in checkpoints before the snapshot from the log
// in the background, keeps them across a restart, and answers the same.
func TestReplica_JoinedFillsHistory(t *testing.T) {
	f := newHistoryFixture(t)
	src := f.open(t, filepath.Join(t.TempDir(), "src"))
	defer src.Close()
	at := len(f.d.entries) * 3 / 4
	f.apply(t, src, at)
	snap, err := src.Store().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _, err = snap.Write(&buf, replica.SnapshotOptions{})
	snap.Close()
	if err != nil {
		t.Fatal(err)
	}

	snapshot := buf.Bytes()
	join := func(t *testing.T, change func(*replica.Config)) (*replica.Replica, string) {
		dir := filepath.Join(t.TempDir(), "joined")
		rep := f.openWith(t, dir, change)
		if _, err := rep.LoadSnapshot(context.Background(), bytes.NewReader(snapshot), replica.LoadOptions{}); err != nil {
			rep.Close()
			t.Fatal(err)
		}
		f.verify(t, rep)
		return rep, dir
	}
	filled := func(t *testing.T, rep *replica.Replica) {
		t.Helper()
		eventlogtest.Eventually(t, 30*time.Second, "checkpoints before the snapshot", func() bool {
			cps := rep.Checkpoints()
			return len(cps) > 1 && cps[0] == 50
		})
	}
	t.Run("current", func(t *testing.T) {
		rep, dir := join(t, func(*replica.Config) {})
		filled(t, rep)
		f.verify(t, rep)
		f.apply(t, rep, len(f.d.entries))
		f.verify(t, rep)
		f.reopenKeeps(t, rep, dir).Close()
	})
	// Behind the log's head, the fill and the checkpoint's file wait until
	// the tail is applied: they would take the cores from it.
	t.Run("behind its log's head", func(t *testing.T) {
		head := uint64(len(f.d.entries))
		rep, dir := join(t, func(c *replica.Config) {
			c.Head = func(context.Context) (uint64, error) { return head, nil }
		})
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			files, err := os.ReadDir(dir + ".checkpoints")
			if cps := rep.Checkpoints(); len(cps) != 1 || len(files) > 0 || (err != nil && !errors.Is(err, fs.ErrNotExist)) {
				rep.Close()
				t.Fatalf("checkpoints %v, files %v (%v) before the tail is applied; want the snapshot's alone, %d, and no file", cps, files, err, at)
			}
		}
		f.apply(t, rep, len(f.d.entries))
		filled(t, rep)
		f.verify(t, rep)
		f.reopenKeeps(t, rep, dir).Close()
	})
}

// TestReplica_NoWarmUpPastTheMemoryBound: a restarted replica whose whole
// state would not fit twice in CheckpointMemory does not rebuild its
// indexes (the replay holds a second whole state until it takes the live
// one's place); its checkpoints stay files and answer the same.
func TestReplica_NoWarmUpPastTheMemoryBound(t *testing.T) {
	f := newHistoryFixture(t)
	dir := filepath.Join(t.TempDir(), "r")
	open := func() *replica.Replica {
		rep, err := replica.Open(replica.Config{Region: "h", Dir: dir, History: f.d.history, CheckpointEvery: 50, MaxCheckpoints: 8,
			HistoryCache: 1, CheckpointMemory: 500 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := open()
	f.apply(t, rep, len(f.d.entries))
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	rep = open()
	defer rep.Close()
	replica.WaitWarm(rep)
	if got := replica.IndexedCheckpoints(rep); len(got) != 0 {
		t.Fatalf("checkpoints holding an index after reopening: got %v, want none (no warm-up)", got)
	}
	f.verify(t, rep)
}

// TestReplica_CatchUpDefersIndexes: a replica catching up — applying
// faster than live traffic (here its clock stands still), or applying
// entries the log wrote long before (its clock runs a second a reading,
// too slow for the rate) — takes the index of one checkpoint in eight, the
// first included; the
// others' are built once the apply slows, and every past state is the same
// before and after they are. A replica applying fresh entries slowly takes
// them all.
func TestReplica_CatchUpDefersIndexes(t *testing.T) {
	stopped := func() time.Time { return time.Unix(1_700_000_000, 0) }
	var readings atomic.Int64
	ticking := func() time.Time { return baseTime.Add(time.Hour + time.Duration(readings.Add(1))*time.Second) }
	for _, tc := range []struct {
		name     string
		now      func() time.Time
		fresh    bool // entries stamped after every reading of the clock
		deferred bool
	}{
		{"fast apply", stopped, false, true},
		{"behind the log's head", ticking, false, true},
		{"live", ticking, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testCatchUpDefersIndexes(t, tc.now, tc.fresh, tc.deferred) })
	}
}

func testCatchUpDefersIndexes(t *testing.T, now func() time.Time, fresh, deferred bool) {
	f := newHistoryFixture(t)
	entries := f.d.entries
	if fresh {
		entries = slices.Clone(entries)
		for i := range entries {
			entries[i].Time = entries[i].Time.AddDate(100, 0, 0)
		}
	}
	// The log stays shut until the indexes taken during the apply are
	// counted: the persister cannot build the deferred ones before.
	logOpen := make(chan struct{})
	history := func(ctx context.Context, from, to uint64, fn func(iam.LogEntry) error) error {
		select {
		case <-logOpen:
		case <-ctx.Done():
			return ctx.Err()
		}
		return f.d.history(ctx, from, to, fn)
	}
	rep, err := replica.Open(replica.Config{Region: "h", Dir: filepath.Join(t.TempDir(), "r"), History: history,
		CheckpointEvery: 50, MaxCheckpoints: 1000, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	for i := 0; i < len(entries); i += 64 {
		if err := rep.ApplyEntries(entries[i:min(i+64, len(entries))]); err != nil {
			t.Fatal(err)
		}
	}
	cps := rep.Checkpoints()
	got := replica.IndexedCheckpoints(rep)
	// Deferred: every eighth, from the first, which the others are
	// forked from.
	var wantIndexed []uint64
	for i, seq := range cps {
		if !deferred || i%8 == 0 {
			wantIndexed = append(wantIndexed, seq)
		}
	}
	if len(cps) < 16 || !slices.Equal(got, wantIndexed) {
		t.Fatalf("after the apply, indexed %v of %v; want %v", got, cps, wantIndexed)
	}
	close(logOpen)
	if err := replica.BuildDeferredIndexes(rep); err != nil {
		t.Fatal(err)
	}
	if got := replica.IndexedCheckpoints(rep); !slices.Equal(got, cps) {
		t.Fatalf("once built, indexed %v; want all of %v", got, cps)
	}
	ctx := context.Background()
	for seq, want := range f.want {
		st, err := rep.StateAt(ctx, seq)
		if err != nil {
			t.Fatalf("state at %d: %v", seq, err)
		}
		if got := rowsDigest(t, st); got != want {
			t.Fatalf("state at %d: rows digest %s, want %s", seq, got, want)
		}
	}
}
