package replica

// Time-travel reads (at_exact_snapshot): the state at any past position,
// built from the nearest earlier checkpoint plus the log. docs/history.md
// says why checkpoints are Pebble snapshots and how they are spaced.

import (
	"context"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	iam "github.com/iam-project/iam"
)

// Defaults of the history knobs in Config.
const (
	DefaultCheckpointEvery = 1000
	DefaultMaxCheckpoints  = 64
	DefaultHistoryCache    = 4
)

// AtExactSnapshot is iam.AtExactSnapshot, kept beside the other modes.
const AtExactSnapshot = iam.AtExactSnapshot

// checkpoint is a Pebble snapshot of the read model at exactly seq. refs
// counts builds reading it, so that one dropped meanwhile is closed by the
// last of them.
type checkpoint struct {
	seq     uint64
	snap    *pebble.Snapshot
	refs    int
	dropped bool
}

// history holds the checkpoints and the last states built; its mutex is
// never held across a scan or a log read.
type history struct {
	// builds holds a slot per build under way: each holds a whole state,
	// and a burst of audits must not hold one each.
	builds chan struct{}

	mu     sync.Mutex
	every  uint64        // spacing of the next checkpoints; doubles as they are thinned
	cps    []*checkpoint // ascending seq
	cache  []*iam.State  // most recently used last
	closed bool
}

// nextCheckpoint is the first checkpoint position after seq.
func (r *Replica) nextCheckpoint(seq uint64) uint64 {
	r.hist.mu.Lock()
	n := r.hist.every
	r.hist.mu.Unlock()
	return (seq/n + 1) * n
}

// checkpointLocked pins a checkpoint at seq, where the read model now
// stands; r.applyMu is held, so nothing is being committed. Past
// MaxCheckpoints every other one is dropped and the spacing of the next
// ones doubles: the whole history stays covered evenly, at a spacing of
// at most 2×head/MaxCheckpoints (a first version kept recent ones dense
// and thinned the older half, which at 1M entries left none between the
// first and the last 12%).
func (r *Replica) checkpointLocked(seq uint64) {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || (len(h.cps) > 0 && h.cps[len(h.cps)-1].seq >= seq) {
		return
	}
	h.cps = append(h.cps, &checkpoint{seq: seq, snap: r.store.db.NewSnapshot()})
	if len(h.cps) <= r.cfg.MaxCheckpoints {
		return
	}
	kept := h.cps[:0]
	for i, cp := range h.cps {
		if i%2 == 1 && i != len(h.cps)-1 {
			cp.drop()
			continue
		}
		kept = append(kept, cp)
	}
	clear(h.cps[len(kept):])
	h.cps = kept
	h.every *= 2
}

// drop releases cp's snapshot once no build reads it; h.mu is held.
func (cp *checkpoint) drop() {
	cp.dropped = true
	if cp.refs == 0 {
		cp.snap.Close()
	}
}

// closeHistory releases every checkpoint; builds under way finish on the
// snapshots they hold (their release then closes them).
func (r *Replica) closeHistory() {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, cp := range h.cps {
		cp.drop()
	}
	h.cps, h.cache = nil, nil
}

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

// build makes the state at seq from the nearest checkpoint and the log.
func (r *Replica) build(ctx context.Context, seq uint64) (*iam.State, error) {
	st := iam.NewState()
	if r.cfg.Limits != nil {
		st.Limits = *r.cfg.Limits
	}
	cp := r.acquire(seq)
	if cp != nil {
		err := scanRows(cp.snap, func(k, v []byte) error { return LoadRow(st, string(k), v) })
		r.release(cp)
		if err != nil {
			return nil, fmt.Errorf("load checkpoint %d of %s: %w", cp.seq, r.cfg.Region, err)
		}
		st.SetSeq(cp.seq)
	}
	if st.Seq() == seq {
		return st, nil
	}
	if r.cfg.History == nil {
		return nil, iam.Errorf(iam.EUnavailable, "region %s cannot read the log to go back to %d", r.cfg.Region, seq)
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
		return nil, iam.Errorf(iam.EUnavailable, "region %s: replay to %d: %v", r.cfg.Region, seq, err)
	}
	if st.Seq() != seq {
		return nil, fmt.Errorf("region %s: the log ends at %d, before %d", r.cfg.Region, st.Seq(), seq)
	}
	return st, nil
}

// acquire returns the latest checkpoint at or before seq, held until
// release; nil when there is none.
func (r *Replica) acquire(seq uint64) *checkpoint {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	var best *checkpoint
	for _, cp := range h.cps {
		if cp.seq > seq {
			break
		}
		best = cp
	}
	if best != nil {
		best.refs++
	}
	return best
}

func (r *Replica) release(cp *checkpoint) {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	cp.refs--
	if cp.dropped && cp.refs == 0 {
		cp.snap.Close()
	}
}
