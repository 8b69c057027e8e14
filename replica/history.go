package replica

// Time-travel reads (at_exact_snapshot): the state at any past position,
// built from the nearest earlier checkpoint plus the log. docs/history.md
// says what checkpoints are, how they are spaced and kept across restarts.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	iam "github.com/iam-project/iam"
)

// Defaults of the history knobs in Config.
const (
	DefaultCheckpointEvery  = 1000
	DefaultMaxCheckpoints   = 64
	DefaultHistoryCache     = 4
	DefaultCheckpointMemory = 512 << 20
	DefaultPersistAtClose   = 5 * time.Second
)

// indexBytesPerID estimates what a checkpoint's index costs beyond the
// live one, per id in the state's maps (iam.State IDs): the copy of the
// small maps and of the buckets of the large ones (iam.IDMap) that change
// before the next checkpoint, and the entities changed, which it then
// holds alone. Measured on BenchmarkAtExactSnapshot's log (~23 B at 90,000
// users, ~181k ids, and 16,000 entries between checkpoints: the heap with
// 63 indexes less the heap with none, 610 - 362 MiB; ~45 B when identities
// and emails were Go maps copied whole), rounded up.
const indexBytesPerID = 40

// stateBytesPerID estimates a whole state's memory per id in its maps:
// BenchmarkScale's 1,030 MiB heap at 1M identities and 10M grants is
// ~540 B per id (identities and emails), rounded up.
const stateBytesPerID = 600

// AtExactSnapshot is iam.AtExactSnapshot, kept beside the other modes.
const AtExactSnapshot = iam.AtExactSnapshot

// checkpoint is the read model at exactly seq: a Pebble snapshot while the
// process that took it runs (cheap to take, fast to read), and a file
// written from it in the background (history_persist.go) that the next
// Open finds. refs counts users (builds, the persister) of its snapshot
// or file; one that is gone from the list meanwhile is released by the
// last of them. All fields are guarded by history.mu.
type checkpoint struct {
	seq  uint64
	snap *pebble.Snapshot // nil once released, and for one found on disk
	file string           // "" until written
	// state is the index at seq, an iam.State Snapshot that shares what
	// did not change with the live state and the other checkpoints' (see
	// docs/history.md): a build forks it rather than loading every row.
	// nil for one found on disk, and once thinned (thinIndexesLocked).
	state *iam.State
	// stateBytes estimates what state costs (indexBytesPerID).
	stateBytes int64
	// deferred: its index was not taken while the replica caught up;
	// buildDeferredIndexes builds it once the apply slows.
	deferred bool
	taken    time.Time // by the replica's clock; zero for one found on disk

	refs       int
	persisting bool // its file is being written
	gone       bool // no longer listed: release it once refs is 0
	remove     bool // with gone: remove its file (dropped by thinning)
}

// history holds the checkpoints and the last states built; its mutex is
// never held across a scan or a log read.
type history struct {
	// builds holds a slot per build under way: each holds a whole state,
	// and a burst of audits must not hold one each.
	builds chan struct{}

	mu sync.Mutex
	// stopFill ends and waits for the background fill of checkpoints
	// before the read model's first one (history_fill.go); nil when none
	// was started.
	stopFill func()
	// stopWarm ends and waits for the background rebuild of the indexes
	// of checkpoints found on disk (history_warm.go); warmed is closed
	// when it ends. Both nil when none was started.
	stopWarm func()
	warmed   chan struct{}
	// wake tells the persister that a checkpoint awaits its file;
	// stopPersist ends the persister and waits for it.
	wake        chan struct{}
	stopPersist func()

	every uint64 // spacing of the next checkpoints; doubles as they are thinned
	// deferring counts the indexes deferred since the last one taken; it
	// starts full, so that a catch-up's first checkpoint takes one for the
	// deferred ones to be forked from.
	deferring int
	// building serializes buildDeferredIndexes runs.
	building sync.Mutex
	cps      []*checkpoint // ascending seq
	cache    []*iam.State  // most recently used last
	closed   bool
}

// checkpointDir is where the checkpoints of the read model in dir are kept:
// beside it, not in it, so that Pebble never sees them as its own files.
func checkpointDir(dir string) string { return dir + ".checkpoints" }

// nextCheckpoint is the first checkpoint position after seq.
func (r *Replica) nextCheckpoint(seq uint64) uint64 {
	r.hist.mu.Lock()
	n := r.hist.every
	r.hist.mu.Unlock()
	return (seq/n + 1) * n
}

// checkpointLocked pins a checkpoint at seq, where the read model and the
// index now stand: r.applyMu is held, so nothing is being applied or
// committed. A Pebble snapshot costs next to nothing here, and a snapshot
// of the index a copy of its maps of ids; the file is written later, off
// the apply path.
func (r *Replica) checkpointLocked(seq uint64) {
	cp := &checkpoint{seq: seq, taken: r.cfg.Now()}
	if r.cfg.CheckpointMemory > 0 && r.state.Seq() == seq && !r.deferIndex(cp) {
		// r.mu is taken (inside Snapshot) only to change the live state's
		// generation: readers go on while the maps are copied, and applyMu
		// keeps apply out.
		cp.state = r.state.Snapshot(&r.mu)
		cp.stateBytes = int64(cp.state.IDs()) * indexBytesPerID
	}
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || (len(h.cps) > 0 && h.cps[len(h.cps)-1].seq >= seq) {
		return
	}
	cp.snap = r.store.db.NewSnapshot()
	h.cps = append(h.cps, cp)
	r.thinLocked()
	r.thinIndexesLocked()
	select {
	case h.wake <- struct{}{}:
	default: // already woken
	}
}

// catchUpIndexStride: a replica catching up (catchingUp) takes the index
// of one checkpoint in this many, the first included, and defers the
// others' to the persister (buildDeferredIndexes), which forks each from
// the one before. An index makes the next changes to whatever it shares
// copy it first: taken every 1,000 entries during a replay, those copies
// and the snapshots were two thirds of the apply's CPU.
const catchUpIndexStride = 8

// catchUpLag: a replica that applies a checkpoint's entry more than this
// long after the log wrote it is behind the log's head. A region that
// joined from a snapshot applies its tail slower than persistBusy while it
// takes an index of its whole state every 1,000 entries, so the rate alone
// did not see it catching up: those indexes made its tail 7× longer
// (docs/benchmarks.md).
const catchUpLag = 2 * time.Second

// deferIndex says whether cp, about to be taken, defers its index, and
// marks it so. Only a replica that can read its log defers: the index is
// built from it later.
func (r *Replica) deferIndex(cp *checkpoint) bool {
	if r.cfg.History == nil {
		return false
	}
	r.mu.RLock()
	logTime := r.lastTime
	r.mu.RUnlock()
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if !r.catchingUpLocked(cp.seq, logTime, cp.taken) || h.deferring == catchUpIndexStride-1 {
		h.deferring = 0
		return false
	}
	h.deferring++
	cp.deferred = true
	return true
}

// behindLog says whether an entry the log wrote at logTime is applied
// behind the log's head at now (catchUpLag); a zero logTime says nothing.
func behindLog(logTime, now time.Time) bool {
	return !logTime.IsZero() && now.Sub(logTime) > catchUpLag
}

// catchingUpLocked says whether the apply reached seq, a checkpoint whose
// entry the log wrote at logTime, at now: behind the log's head
// (catchUpLag), or at more than persistBusy entries per persistProbe since
// the last checkpoint (live traffic is far below that rate). h.mu is held.
func (r *Replica) catchingUpLocked(seq uint64, logTime, now time.Time) bool {
	if behindLog(logTime, now) {
		return true
	}
	if len(r.hist.cps) == 0 {
		return false
	}
	last := r.hist.cps[len(r.hist.cps)-1] // thinning keeps the last
	return !last.taken.IsZero() && seq > last.seq &&
		time.Duration(seq-last.seq)*persistProbe > persistBusy*now.Sub(last.taken)
}

// thinLocked keeps at most MaxCheckpoints: past that, every other one is
// dropped and the spacing of the next ones doubles. The whole history
// stays covered evenly, at a spacing of at most 2×head/MaxCheckpoints (a
// first version kept recent ones dense and thinned the older half, which
// at 1M entries left none between the first and the last 12%). h.mu is
// held.
func (r *Replica) thinLocked() {
	h := &r.hist
	for len(h.cps) > r.cfg.MaxCheckpoints {
		kept := h.cps[:0]
		for i, cp := range h.cps {
			if i%2 == 1 && i != len(h.cps)-1 {
				r.dropLocked(cp, true)
				continue
			}
			kept = append(kept, cp)
		}
		clear(h.cps[len(kept):])
		h.cps = kept
		h.every *= 2
	}
}

// thinIndexesLocked keeps the checkpoints' indexes within
// CheckpointMemory: past it, the checkpoint whose index is let go (its rows
// stay, for the slower load) is the one whose neighbours holding one are
// closest, so that those left stay spread evenly over the history; the
// newest is kept. h.mu is held.
func (r *Replica) thinIndexesLocked() {
	var holders []*checkpoint
	var total int64
	for _, cp := range r.hist.cps {
		if cp.state != nil {
			holders = append(holders, cp)
			total += cp.stateBytes
		}
	}
	for total > r.cfg.CheckpointMemory && len(holders) > 0 {
		drop := 0 // the oldest, when it is the only one but the newest
		if len(holders) > 2 {
			gap := func(i int) uint64 { return holders[i+1].seq - holders[i-1].seq }
			drop = 1
			for i := 2; i < len(holders)-1; i++ {
				if gap(i) < gap(drop) {
					drop = i
				}
			}
		}
		total -= holders[drop].stateBytes
		holders[drop].state = nil
		holders = slices.Delete(holders, drop, drop+1)
	}
}

// dropLocked takes cp off the list; its snapshot is closed and its file
// removed once no one uses them. h.mu is held.
func (r *Replica) dropLocked(cp *checkpoint, removeFile bool) {
	cp.gone, cp.remove = true, removeFile
	if cp.refs == 0 {
		r.freeLocked(cp)
	}
}

// freeLocked frees what cp holds once it is gone and unused; h.mu is
// held.
func (r *Replica) freeLocked(cp *checkpoint) {
	cp.state = nil
	if cp.snap != nil {
		_ = cp.snap.Close()
		cp.snap = nil
	}
	if cp.remove && cp.file != "" {
		_ = r.fs().Remove(cp.file)
		cp.file = ""
	}
}

// closeHistory stops the background work, writes the checkpoint files
// not yet written and lets go of the checkpoints, whose files stay for the
// next Open; builds under way finish on the
// checkpoints they hold (their release then closes them).
func (r *Replica) closeHistory() {
	h := &r.hist
	h.mu.Lock()
	stopFill, stopWarm, stopPersist := h.stopFill, h.stopWarm, h.stopPersist
	h.mu.Unlock()
	if stopFill != nil {
		stopFill() // before closed is set: the fill's last step takes h.mu
	}
	if stopWarm != nil {
		stopWarm()
	}
	if stopPersist != nil {
		stopPersist()
		// What the persister has not reached yet is written now (in the
		// steady state one file at most), within PersistAtClose: right
		// after a catch-up that is dozens of files, each the whole read
		// model, and an orchestrator would kill a process that took
		// minutes to stop. The missing ones, as after a crash, only mean
		// longer replays.
		if r.cfg.PersistAtClose > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PersistAtClose)
			_ = r.persistAll(ctx)
			cancel()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, cp := range h.cps {
		r.dropLocked(cp, false)
	}
	h.cps, h.cache = nil, nil
}

// openHistory finds the checkpoint files a previous run left at or before
// pos and removes the others (a read model emptied or rebuilt has none of
// their history), restores the spacing they were taken at, and starts the
// persister.
func (r *Replica) openHistory(pos uint64, persist bool) error {
	fs, root := r.fs(), checkpointDir(r.cfg.Dir)
	if err := fs.MkdirAll(root, 0o755); err != nil {
		return err
	}
	names, err := fs.List(root)
	if err != nil {
		return err
	}
	for _, name := range names {
		seq, ok := checkpointSeq(name)
		if !ok || seq > pos || seq == 0 {
			if err := fs.RemoveAll(fs.PathJoin(root, name)); err != nil {
				return err
			}
			continue
		}
		r.hist.cps = append(r.hist.cps, &checkpoint{seq: seq, file: fs.PathJoin(root, name)})
	}
	slices.SortFunc(r.hist.cps, func(a, b *checkpoint) int { return cmp.Compare(a.seq, b.seq) })
	for pos/r.hist.every > uint64(r.cfg.MaxCheckpoints) {
		r.hist.every *= 2
	}
	r.thinLocked()
	r.hist.wake = make(chan struct{}, 1)
	if persist {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		r.hist.stopPersist = func() { cancel(); <-done }
		go func() {
			defer close(done)
			r.persistLoop(ctx)
		}()
	}
	return nil
}

// fs is the filesystem of the read model and its checkpoints (Open sets
// cfg.FS).
func (r *Replica) fs() vfs.FS { return r.cfg.FS }

// Checkpoints returns the positions of the checkpoints held, ascending.
func (r *Replica) Checkpoints() []uint64 {
	r.hist.mu.Lock()
	defer r.hist.mu.Unlock()
	seqs := make([]uint64, len(r.hist.cps))
	for i, cp := range r.hist.cps {
		seqs[i] = cp.seq
	}
	return seqs
}

// readAt runs fn on the state at exactly c.Token (at_exact_snapshot). A
// token the replica has not applied is waited for as at_least_as_fresh
// does, unless it is past the log's head: that is invalid_argument, since
// no wait would ever reach it.
func (r *Replica) readAt(ctx context.Context, c Consistency, fn func(*iam.State) error) (uint64, error) {
	t := c.Token
	if t == 0 {
		return 0, iam.FieldErrorf("consistency.token", "is required for %s", AtExactSnapshot)
	}
	if t > r.Applied() {
		wait := r.waitOf(c)
		if r.cfg.Head != nil {
			hctx, cancel := context.WithTimeout(ctx, wait)
			head, err := r.heads.get(hctx)
			cancel()
			// A head that cannot be learnt leaves the bounded wait to
			// answer replica_behind.
			if err == nil && t > head {
				return 0, iam.FieldErrorf("consistency.token", "position %d is past the log's head %d", t, head)
			}
		}
		if err := r.WaitFor(ctx, t, wait); err != nil {
			return 0, err
		}
	}
	r.mu.RLock()
	// The index runs ahead of r.pos during a commit (apply), so the
	// state's own sequence, not r.pos, says whether it is exactly at t.
	if r.state.Seq() == t {
		defer r.mu.RUnlock()
		return t, fn(r.state)
	}
	r.mu.RUnlock()
	st, err := r.StateAt(ctx, t)
	if err != nil {
		return 0, err
	}
	return t, fn(st)
}

// StateAt returns the state at exactly seq, which the replica must have
// applied: a recently built one from the cache, else one loaded from the
// nearest checkpoint at or before seq and brought to seq by replaying the
// log (Config.History; from the first entry when no checkpoint is that
// old). At most GOMAXPROCS builds run at once; the others wait for a
// slot. The state is shared with other readers and must not be changed.
// Errors: invalid_argument for a position not applied yet; unavailable
// when the log cannot be read or ctx ends first; internal when the log
// does not hold seq.
func (r *Replica) StateAt(ctx context.Context, seq uint64) (*iam.State, error) {
	if applied := r.Applied(); seq > applied {
		return nil, iam.FieldErrorf("consistency.token", "position %d is past the %d region %s has applied", seq, applied, r.cfg.Region)
	}
	if st := r.cached(seq); st != nil {
		return st, nil
	}
	select {
	case r.hist.builds <- struct{}{}:
	case <-ctx.Done():
		return nil, iam.Errorf(iam.EUnavailable, "region %s: waiting to build the state at %d: %v", r.cfg.Region, seq, ctx.Err())
	}
	defer func() { <-r.hist.builds }()
	// The same position is often asked for by several requests at once:
	// the first build may have finished while this one waited.
	if st := r.cached(seq); st != nil {
		return st, nil
	}
	st, err := r.build(ctx, seq)
	if err != nil {
		return nil, err
	}
	r.hist.mu.Lock()
	defer r.hist.mu.Unlock()
	if !r.hist.closed {
		r.hist.cache = append(r.hist.cache, st)
		if len(r.hist.cache) > r.cfg.HistoryCache {
			r.hist.cache[0] = nil
			r.hist.cache = r.hist.cache[1:]
		}
	}
	return st, nil
}

func (r *Replica) cached(seq uint64) *iam.State {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, st := range h.cache {
		if st.Seq() == seq {
			h.cache = append(append(h.cache[:i:i], h.cache[i+1:]...), st) // now most recent
			return st
		}
	}
	return nil
}

// CheckpointState returns a state of the caller's own, which it may
// change, at the latest checkpoint at or before seq (empty when there is
// none): a replay of the log towards seq starts after its Seq() rather
// than at the first entry (an identity's access changes). It waits for a
// build slot as StateAt does. Errors: unavailable when ctx ends first;
// those of opening the checkpoint.
func (r *Replica) CheckpointState(ctx context.Context, seq uint64) (*iam.State, error) {
	select {
	case r.hist.builds <- struct{}{}:
	case <-ctx.Done():
		return nil, iam.Errorf(iam.EUnavailable, "region %s: waiting to load a checkpoint: %v", r.cfg.Region, ctx.Err())
	}
	defer func() { <-r.hist.builds }()
	return r.fromCheckpoint(seq)
}

func (r *Replica) emptyState() *iam.State {
	st := iam.NewState()
	if r.cfg.Limits != nil {
		st.Limits = *r.cfg.Limits
	}
	return st
}

// build makes the state at seq from the nearest checkpoint and the log.
func (r *Replica) build(ctx context.Context, seq uint64) (*iam.State, error) {
	st, err := r.fromCheckpoint(seq)
	if err == nil {
		err = r.replayTo(ctx, st, seq)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// replayTo brings st, a state of the caller's own, forward to seq with the
// log.
func (r *Replica) replayTo(ctx context.Context, st *iam.State, seq uint64) error {
	if st.Seq() == seq {
		return nil
	}
	if r.cfg.History == nil {
		return iam.Errorf(iam.EUnavailable, "region %s cannot read the log to go back to %d", r.cfg.Region, seq)
	}
	err := r.cfg.History(ctx, st.Seq()+1, seq, func(e iam.LogEntry) error {
		if e.Seq != st.Seq()+1 {
			return fmt.Errorf("entry %d does not follow %d", e.Seq, st.Seq())
		}
		if err := st.ApplyEntry(e, nil); err != nil {
			return fmt.Errorf("entry %d: %w", e.Seq, err)
		}
		return nil
	})
	if err != nil {
		return iam.Errorf(iam.EUnavailable, "region %s: replay to %d: %v", r.cfg.Region, seq, err)
	}
	if st.Seq() != seq {
		return fmt.Errorf("region %s: the log ends at %d, before %d", r.cfg.Region, st.Seq(), seq)
	}
	return nil
}

// fromCheckpoint returns a state of the caller's own at the latest
// checkpoint at or before seq, empty when there is none: a fork of the
// checkpoint's index when it is held, else its rows loaded (from its Pebble
// snapshot or its file).
func (r *Replica) fromCheckpoint(seq uint64) (*iam.State, error) {
	cp, held := r.acquire(seq)
	if cp == nil {
		return r.emptyState(), nil
	}
	defer r.release(cp)
	if held != nil {
		return held.Fork(), nil
	}
	st := r.emptyState()
	var err error
	if cp.snap != nil {
		err = loadIndex(cp.snap, st, nil)
	} else {
		err = loadCheckpointFile(r.fs(), cp.file, cp.seq, st)
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %d of %s: %w", cp.seq, r.cfg.Region, err)
	}
	st.SetSeq(cp.seq)
	return st, nil
}

// forkReach is how many checkpoint spacings back acquire looks for an
// index when the nearest checkpoint holds none: at BenchmarkAtExactSnapshot's
// spacing (16,000), four spacings read from JetStream (~14 µs an entry)
// take about what loading its 90,000-user checkpoint's rows takes (~1 s);
// nearer, the fork wins.
const forkReach = 4

// acquire returns the latest checkpoint at or before seq (or, when it
// holds no index, one within forkReach spacings that does), held (its
// snapshot open, its file kept) until release, and the index it holds
// (nil when it holds none yet); nil when there is none.
func (r *Replica) acquire(seq uint64) (*checkpoint, *iam.State) {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	var best, indexed *checkpoint
	for _, cp := range h.cps {
		if cp.seq > seq {
			break
		}
		best = cp
		if cp.state != nil {
			indexed = cp
		}
	}
	if best == nil {
		return nil, nil
	}
	// A fork and a replay of a few spacings' entries beats loading every
	// row of the nearest checkpoint when that one holds no index.
	if best.state == nil && indexed != nil && seq-indexed.seq <= forkReach*h.every {
		best = indexed
	}
	best.refs++
	return best, best.state
}

// release ends a use of cp.
func (r *Replica) release(cp *checkpoint) {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	cp.refs--
	if cp.refs == 0 && cp.gone {
		r.freeLocked(cp)
	}
}
