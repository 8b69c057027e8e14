package replica

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	iam "github.com/iam-project/iam"
)

// headLookupTimeout bounds one lookup of the log's head.
const headLookupTimeout = 5 * time.Second

// Consistency modes of a read: the names of iam's, kept for this
// package's callers (iam.MinimizeLatency and so on are the one home).
const (
	MinimizeLatency = iam.MinimizeLatency
	AtLeastAsFresh  = iam.AtLeastAsFresh
	FullyConsistent = iam.FullyConsistent
)

// Consistency says how fresh a read must be. Token is a log sequence (for
// at_least_as_fresh; the exact position for at_exact_snapshot); Wait bounds
// how long the read may wait for the replica.
type Consistency struct {
	Mode  string
	Token uint64
	Wait  time.Duration
}

// Config configures a replica.
type Config struct {
	Region string
	// Dir holds the Pebble read model.
	Dir string
	// FS is the filesystem (nil: the OS).
	FS        vfs.FS
	CacheSize int64
	// Head returns the log's head sequence, for fully_consistent reads.
	Head func(ctx context.Context) (uint64, error)
	// DefaultWait is how long a read waits for the replica when the request
	// names no wait; MaxWait caps any wait. Defaults 2s and 30s.
	DefaultWait time.Duration
	MaxWait     time.Duration
	Limits      *iam.Limits
	// Now stamps when each batch was applied (LastApplied). Default
	// time.Now.
	Now func() time.Time
	// SnapshotVerifier, if set, checks the signature of every snapshot
	// loaded (LoadSnapshot, Join): an unsigned or forged one is refused
	// as corrupt.
	SnapshotVerifier SnapshotVerifier
	// History reads the verified log entries from one sequence to
	// another, in order, until fn returns an error
	// (eventlog.Log.ReadRange): at_exact_snapshot replays it from a
	// checkpoint. Nil: only checkpointed positions and the current one
	// are answered.
	History func(ctx context.Context, from, to uint64, fn func(iam.LogEntry) error) error
	// CheckpointEvery is the spacing, in log entries, of the checkpoints
	// at_exact_snapshot starts from (default DefaultCheckpointEvery);
	// MaxCheckpoints bounds how many are kept (DefaultMaxCheckpoints);
	// HistoryCache how many past states built are kept for the next
	// reads (DefaultHistoryCache). CheckpointMemory bounds the memory
	// the checkpoints' indexes take beyond the live one, estimated
	// (DefaultCheckpointMemory; negative: none is kept, and every past
	// read loads a checkpoint's rows). See docs/history.md.
	CheckpointEvery  uint64
	MaxCheckpoints   int
	HistoryCache     int
	CheckpointMemory int64
	// PersistAtClose bounds the time Close spends writing the files of
	// checkpoints the persister has not reached (DefaultPersistAtClose;
	// negative: none is written). Those left are lost, as after a crash,
	// until the next Open has filled them in from the log; reads there
	// replay from the checkpoint before meanwhile.
	PersistAtClose time.Duration
	// BulkCatchUp: an empty replica whose first batch ends at least this
	// many entries behind the log's head (Head) catches up as a bulk load
	// (bulk.go): the log applied to the index alone, every row written
	// once when it has caught up. Zero: DefaultBulkCatchUp; negative:
	// never. Without Head, never.
	BulkCatchUp int64

	// historyFill marks the scratch replica of a fill (history_fill.go):
	// its checkpoint files are written at the end (persistAll), not by a
	// persister in the background.
	historyFill bool
}

// Replica is one region's read model. All methods are safe for concurrent
// use; ApplyEntries must be called by one goroutine (the projector).
type Replica struct {
	cfg   Config
	store *Store

	mu        sync.RWMutex
	state     *iam.State
	pos       Position
	lastTime  time.Time     // log time of the last applied entry
	advanced  chan struct{} // closed and replaced whenever pos advances
	applyErr  error
	appliedAt time.Time
	heads     headCoalescer
	touched   []iam.Change // ApplyEntries' buffer, reused (under mu) to spare a replay its allocations
	rowKeys   []byte       // ApplyEntries' buffer of row keys, reused (under applyMu)
	changes   []RowChange  // ApplyEntries' rows to commit, reused (under applyMu)

	// applyMu is held by ApplyEntries while it applies one segment of a
	// batch, so that DigestAt can pin a Pebble snapshot exactly at a
	// position (digest.go); it guards stops and recent.
	applyMu sync.Mutex
	stops   map[uint64][]chan *pebble.Snapshot // positions DigestAt waits at
	// bulk is the bulk catch-up under way (bulk.go), nil when none;
	// canBulk holds until the first batch decides whether to start one.
	bulk       *bulkCatchUp
	canBulk    bool
	bulkProbes sync.WaitGroup // the probes of bulk catch-ups, waited for at Close
	recent     []Digest       // last digests taken, newest last
	entries    atomic.Uint64  // entries applied since Open

	hist history // checkpoints and built states for at_exact_snapshot (history.go)
}

// Open opens the read model in cfg.Dir and loads its index.
func Open(cfg Config) (*Replica, error) {
	if cfg.DefaultWait == 0 {
		cfg.DefaultWait = 2 * time.Second
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.MaxCheckpoints <= 0 {
		cfg.MaxCheckpoints = DefaultMaxCheckpoints
	}
	if cfg.HistoryCache <= 0 {
		cfg.HistoryCache = DefaultHistoryCache
	}
	if cfg.CheckpointMemory == 0 {
		cfg.CheckpointMemory = DefaultCheckpointMemory
	}
	if cfg.PersistAtClose == 0 {
		cfg.PersistAtClose = DefaultPersistAtClose
	}
	if cfg.BulkCatchUp == 0 {
		cfg.BulkCatchUp = DefaultBulkCatchUp
	}
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	cfg.FS = fs
	store, err := OpenStore(cfg.Dir, StoreOptions{FS: fs, CacheSize: cfg.CacheSize})
	if err != nil {
		return nil, err
	}
	state := iam.NewState()
	if cfg.Limits != nil {
		state.Limits = *cfg.Limits
	}
	identities, err := identityCounts(store.db)
	if err == nil {
		growHeapFor(store.storedRows())
		err = loadIndex(store.db, state, identities)
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("load read model of %s: %w", cfg.Region, err)
	}
	pos, err := store.Position()
	if err != nil {
		store.Close()
		return nil, err
	}
	state.SetSeq(pos.Seq)
	r := &Replica{cfg: cfg, store: store, state: state, pos: pos, advanced: make(chan struct{}),
		heads: headCoalescer{head: cfg.Head}}
	// A fill's scratch replica takes the checkpoints it is made for.
	r.canBulk = cfg.Head != nil && cfg.BulkCatchUp > 0 && !cfg.historyFill && store.requireEmpty() == nil
	r.hist.builds = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	r.hist.every = cfg.CheckpointEvery
	r.hist.deferring = catchUpIndexStride - 1
	if err := r.openHistory(pos.Seq, !cfg.historyFill); err != nil {
		store.Close()
		return nil, fmt.Errorf("open checkpoints of %s: %w", cfg.Region, err)
	}
	// Nothing is applied yet: applyMu need not be held.
	r.historyFrom(pos.Seq)
	if !cfg.historyFill {
		r.warmFrom()
	}
	return r, nil
}

// Close closes the read model, writing first the rows of a bulk catch-up
// under way (so that the next Open need not replay the log again).
func (r *Replica) Close() error {
	r.applyMu.Lock()
	err := r.finishBulkLocked(false)
	r.applyMu.Unlock()
	r.bulkProbes.Wait()
	r.closeHistory()
	return errors.Join(err, r.store.Close())
}

// Region names the region this replica serves.
func (r *Replica) Region() string { return r.cfg.Region }

// Store gives access to the durable read model (digests, tests).
func (r *Replica) Store() *Store { return r.store }

// Applied is the sequence of the last applied log entry.
// RealmLastSeq returns the sequence of the last entry applied to realm, and
// whether it is known: 0 and true for a realm the replica does not hold;
// false for a realm held but whose last sequence was not yet seen since
// Open (the rows do not keep it). It lets the projector refuse a replayed
// entry (projector.RealmSeqs).
func (r *Replica) RealmLastSeq(realm string) (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rl := r.state.Realm(realm)
	if rl == nil {
		return 0, true
	}
	return rl.LastSeq, rl.LastSeq != 0
}

func (r *Replica) Applied() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.pos.Seq
}

// AppliedMsgID is the message id of the last applied entry.
func (r *Replica) AppliedMsgID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.pos.MsgID
}

// LastApplied returns the last applied position, the log time of that
// entry and when it was applied here.
func (r *Replica) LastApplied() (Position, time.Time, time.Time) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.pos, r.lastTime, r.appliedAt
}

// AppliedEntries returns how many log entries ApplyEntries applied since
// Open: a replica that joined from a snapshot applied only the tail after
// it.
func (r *Replica) AppliedEntries() uint64 { return r.entries.Load() }

// ApplyEntries applies entries (which must continue the applied sequence
// exactly) to the index and commits their rows and the new position to
// Pebble in one batch. It is the projector's Sink method, for one
// goroutine. An entry with an event of a type the domain does not know
// (iam.State.ApplyEntry) is an error, and so is every later call, as after
// a failed commit: the index may then be ahead of Pebble.
//
// A batch that runs past a position a DigestAt waits for, or past a
// checkpoint position (history.go), is applied in segments, with a Pebble
// snapshot pinned at the end of each.
//
// An empty replica far behind its log (Config.BulkCatchUp) applies its
// batches to the index alone until it has caught up, and only then writes
// their rows (bulk.go): Applied() moves on meanwhile, but a crash before
// the rows are written leaves the read model empty.
func (r *Replica) ApplyEntries(entries []iam.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if bulk, err := r.applyBulk(entries); bulk || err != nil {
		return err
	}
	r.holdCompactions(entries[len(entries)-1].Time)
	for len(entries) > 0 {
		r.applyMu.Lock()
		n := len(entries)
		first := entries[0].Seq
		for s := range r.stops {
			if s >= first && s-first+1 < uint64(n) {
				n = int(s - first + 1)
			}
		}
		cp := r.nextCheckpoint(first - 1)
		if cp-first+1 < uint64(n) {
			n = int(cp - first + 1)
		}
		err := r.apply(entries[:n])
		if err == nil {
			r.entries.Add(uint64(n))
			last := entries[n-1].Seq
			r.releaseLocked(last)
			if last == cp {
				r.checkpointLocked(last)
			}
		}
		r.applyMu.Unlock()
		if err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// holdCompactions holds Pebble's compactions back while the replica
// catches up, which a batch whose last entry the log wrote at logTime more
// than catchUpLag ago says it does, and lets them run again at a batch
// that finds it caught up (compaction.go); the persister lets them run
// when the apply slows (awaitSlowApply), should no such batch come.
func (r *Replica) holdCompactions(logTime time.Time) {
	if behindLog(logTime, r.cfg.Now()) {
		r.store.holdCompactions()
	} else {
		r.store.releaseCompactions()
	}
}

// apply applies one segment of a batch.
//
// The index changes before Pebble commits, and the position only after: a
// check during the commit may see the new state but is answered with the old
// (lower) token, which is never too fresh a claim. Checks do not wait for
// Pebble's commit (whose tail reaches tens of milliseconds on a memtable
// flush).
func (r *Replica) apply(entries []iam.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	r.mu.Lock()
	if r.applyErr != nil {
		r.mu.Unlock()
		return r.applyErr
	}
	next := r.pos.Seq
	for _, e := range entries {
		if e.Seq != next+1 {
			r.mu.Unlock()
			return fmt.Errorf("replica %s: entry %d does not follow applied %d", r.cfg.Region, e.Seq, next)
		}
		next = e.Seq
	}
	// Rows are read after the whole batch is applied, so a row touched
	// twice gets its final value both times (Commit lets the last win);
	// repeats next to each other are skipped. A slice, not a set: building
	// a map of the changes cost a replay more than the repeats do.
	touched := r.touched[:0]
	touch := func(c iam.Change) {
		if n := len(touched); n == 0 || touched[n-1] != c {
			touched = append(touched, c)
		}
	}
	for _, e := range entries {
		if err := r.state.ApplyEntry(e, touch); err != nil {
			// Entries before e are applied but not committed: the index is
			// ahead of Pebble, so refuse further work (the projector then
			// stops this replica as unhealthy).
			r.applyErr = fmt.Errorf("replica %s: entry %d: %w", r.cfg.Region, e.Seq, err)
			r.mu.Unlock()
			return r.applyErr
		}
	}
	// Keys are appended to one buffer and changes to one slice, both kept
	// for the next batch: Commit copies them into Pebble's batch. A slice
	// of the buffer stays valid when an append moves the buffer on.
	keys, changes := r.rowKeys[:0], r.changes[:0]
	for _, c := range touched {
		start := len(keys)
		keys = appendRowKey(keys, c)
		k := keys[start:]
		if v, ok := rowValue(r.state, c); ok {
			changes = append(changes, RowChange{Key: k, Value: v})
		} else {
			changes = append(changes, RowChange{Key: k, Delete: true})
		}
	}
	clear(touched) // keep the capacity, not the ids
	r.touched, r.rowKeys = keepable(touched), keepable(keys)
	r.mu.Unlock()

	last := entries[len(entries)-1]
	pos := Position{Seq: last.Seq, MsgID: last.MsgID}
	err := r.store.Commit(changes, pos)
	clear(changes) // keep the capacity, not the values
	r.changes = keepable(changes)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// The index is now ahead of Pebble: refuse further work rather than
		// go on from a state the durable form does not have.
		r.applyErr = fmt.Errorf("replica %s: %w", r.cfg.Region, err)
		return r.applyErr
	}
	r.pos, r.lastTime, r.appliedAt = pos, last.Time, r.cfg.Now()
	close(r.advanced)
	r.advanced = make(chan struct{})
	return nil
}

// maxKeptBuffer bounds the buffers apply keeps for its next batch, in
// elements: a replay's batch of 512 entries needs some 600 rows and 20 KiB
// of keys, while one event that touches a million rows (a realm's
// deletion) should not leave its buffers held for the process's life.
const maxKeptBuffer = 1 << 16

// keepable returns buf emptied to keep for the next batch, or nil when
// it grew past maxKeptBuffer.
func keepable[T any](buf []T) []T {
	if cap(buf) > maxKeptBuffer {
		return nil
	}
	return buf[:0]
}

// WaitFor blocks until the replica has applied seq, ctx ends, or wait
// passes; then it returns a replica_behind error.
func (r *Replica) WaitFor(ctx context.Context, seq uint64, wait time.Duration) error {
	var timer <-chan time.Time
	for {
		r.mu.RLock()
		applied, advanced := r.pos.Seq, r.advanced
		r.mu.RUnlock()
		if applied >= seq {
			return nil
		}
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-advanced:
		case <-timer:
			return iam.Errorf(iam.EReplicaBehind, "region %s has applied up to %d, behind the requested %d after waiting %s", r.cfg.Region, applied, seq, wait)
		case <-ctx.Done():
			return iam.Errorf(iam.EReplicaBehind, "region %s has applied up to %d, behind the requested %d: %v", r.cfg.Region, applied, seq, ctx.Err())
		}
	}
}

// Ensure waits until the replica satisfies c. It returns replica_behind when
// the wait ends first, and invalid_argument for an unknown mode.
func (r *Replica) Ensure(ctx context.Context, c Consistency) error {
	wait := r.waitOf(c)
	switch c.Mode {
	case "", MinimizeLatency:
		return nil
	case AtLeastAsFresh:
		return r.WaitFor(ctx, c.Token, wait)
	case FullyConsistent:
		if r.cfg.Head == nil {
			return iam.Errorf(iam.EUnavailable, "region %s cannot learn the log's head", r.cfg.Region)
		}
		hctx, cancel := context.WithTimeout(ctx, wait)
		head, err := r.heads.get(hctx)
		cancel()
		if err != nil {
			return iam.Errorf(iam.EReplicaBehind, "region %s cannot reach the log for its head: %v", r.cfg.Region, err)
		}
		return r.WaitFor(ctx, max(head, c.Token), wait)
	}
	return iam.FieldErrorf("consistency.mode", "%q is not one of %s, %s, %s", c.Mode, MinimizeLatency, AtLeastAsFresh, FullyConsistent)
}

// waitOf is how long a read at c may wait for the replica.
func (r *Replica) waitOf(c Consistency) time.Duration {
	wait := c.Wait
	if wait <= 0 {
		wait = r.cfg.DefaultWait
	}
	return min(wait, r.cfg.MaxWait)
}

// Check answers q at consistency c. It returns the decision and the log
// position it was evaluated at.
func (r *Replica) Check(ctx context.Context, q iam.CheckRequest, c Consistency) (iam.Decision, uint64, error) {
	if c.Mode == AtExactSnapshot {
		var d iam.Decision
		seq, err := r.readAt(ctx, c, func(st *iam.State) error { d = st.Check(q); return nil })
		return d, seq, err
	}
	if err := r.Ensure(ctx, c); err != nil {
		return iam.Decision{}, 0, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.state.Check(q), r.pos.Seq, nil
}

// Read calls fn with the state once the replica satisfies c, under a read
// lock: fn must not keep references into the state nor change it. It
// returns the position read at. With at_exact_snapshot fn gets the state at
// exactly c.Token (history.go): invalid_argument when c.Token is 0 or past
// the log's head, replica_behind when the replica does not reach it in
// time.
func (r *Replica) Read(ctx context.Context, c Consistency, fn func(*iam.State) error) (uint64, error) {
	if c.Mode == AtExactSnapshot {
		return r.readAt(ctx, c, fn)
	}
	if err := r.Ensure(ctx, c); err != nil {
		return 0, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.pos.Seq, fn(r.state)
}
