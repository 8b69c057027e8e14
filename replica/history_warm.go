package replica

// Giving the checkpoints found on disk their indexes back. A restarted
// replica loads its live index from rows and its checkpoints are files: a
// past read would load a checkpoint's rows (O(state)) until the indexes
// are rebuilt. docs/history.md says why they are rebuilt by a replay of
// the region's own log rather than loaded from the files.

import (
	"context"
	"fmt"
	"sync"

	iam "github.com/iam-project/iam"
)

// warmFrom starts, in the background, a replay of the log up to the
// replica's position into a state of its own, which takes an index at
// each checkpoint that has none and then, caught up, takes the live
// index's place: the indexes then share what did not change with each
// other and with the live one, as if the replica had applied the whole log
// in this run. It does nothing when no checkpoint lacks an index, indexes
// are not kept, the log cannot be read, or the second whole state the
// replay holds until it takes the live one's place would not fit in
// CheckpointMemory (stateBytesPerID: at 1M identities it would double the
// process's memory for the minutes the replay takes). Called from Open.
func (r *Replica) warmFrom() {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.cfg.History == nil || r.cfg.CheckpointMemory <= 0 || h.closed || h.stopFill != nil ||
		int64(r.state.IDs())*stateBytesPerID > r.cfg.CheckpointMemory {
		return
	}
	var targets []uint64
	for _, cp := range h.cps {
		if cp.state == nil {
			targets = append(targets, cp.seq)
		}
	}
	if len(targets) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.warmed = make(chan struct{})
	h.stopWarm = func() { cancel(); <-h.warmed }
	go func() {
		defer close(h.warmed)
		// A warm-up that fails leaves the checkpoints as files: past
		// reads load their rows, slower but the same answers.
		_ = r.warm(ctx, targets)
	}()
}

// warm replays the log into a new state, keeping an index at each of
// targets, and puts the state in the live one's place once it stands
// where the live one does.
func (r *Replica) warm(ctx context.Context, targets []uint64) error {
	st := r.emptyState()
	var private sync.Mutex // st has no readers but this goroutine
	replay := func(to uint64) error {
		if to <= st.Seq() {
			return nil
		}
		return r.cfg.History(ctx, st.Seq()+1, to, func(e iam.LogEntry) error {
			if e.Seq != st.Seq()+1 {
				return fmt.Errorf("entry %d does not follow %d", e.Seq, st.Seq())
			}
			if err := st.ApplyEntry(e, nil); err != nil {
				return fmt.Errorf("entry %d: %w", e.Seq, err)
			}
			for len(targets) > 0 && targets[0] < e.Seq {
				targets = targets[1:]
			}
			if len(targets) > 0 && targets[0] == e.Seq {
				r.keepIndex(st.Snapshot(&private))
			}
			return nil
		})
	}
	// Most of the log without holding up the projector; the entries it
	// applied meanwhile with it held.
	if err := replay(r.Applied()); err != nil {
		return fmt.Errorf("warm the checkpoints of %s: %w", r.cfg.Region, err)
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	if err := replay(r.Applied()); err != nil {
		return fmt.Errorf("warm the checkpoints of %s: %w", r.cfg.Region, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// applyMu is held: the live index stands at the applied position.
	if r.applyErr != nil || st.Seq() != r.state.Seq() {
		return fmt.Errorf("warm the checkpoints of %s: at %d, the live index at %d", r.cfg.Region, st.Seq(), r.state.Seq())
	}
	r.state = st
	return nil
}

// keepIndex gives the checkpoint at index's position that index, unless
// it has one or is gone.
func (r *Replica) keepIndex(index *iam.State) {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cp := range h.cps {
		if cp.seq == index.Seq() && cp.state == nil {
			cp.state, cp.stateBytes = index, int64(index.IDs())*indexBytesPerID
			r.thinIndexesLocked()
			return
		}
	}
}

// buildDeferredIndexes builds the indexes a catch-up deferred
// (catchUpIndexStride), oldest first, each forked from the nearest index
// before it and brought forward by the log between: a spacing's entries.
// They then share with each other what did not change, and cost together
// about one in-memory replay of the log, off the apply path. It stops at
// the first that fails (the log cannot be read): a past read then builds
// from further back, slower but the same answers.
func (r *Replica) buildDeferredIndexes(ctx context.Context) error {
	h := &r.hist
	h.building.Lock()
	defer h.building.Unlock()
	for ctx.Err() == nil {
		seq, ok := r.nextDeferred()
		if !ok {
			return nil
		}
		if err := r.buildIndex(ctx, seq); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// buildIndex gives the checkpoint at seq an index forked from one within
// forkReach before it, in one of the build slots the reads share. With
// none there it builds nothing: an index loaded from rows would share
// nothing, a whole state where CheckpointMemory counts 80 B an id.
func (r *Replica) buildIndex(ctx context.Context, seq uint64) error {
	select {
	case r.hist.builds <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.hist.builds }()
	cp, held := r.acquire(seq)
	if cp == nil {
		return nil
	}
	r.release(cp)
	if held == nil {
		return nil
	}
	st := held.Fork()
	if err := r.replayTo(ctx, st, seq); err != nil {
		return err
	}
	var private sync.Mutex // st has no readers but this goroutine
	r.keepIndex(st.Snapshot(&private))
	return nil
}

// nextDeferred returns the oldest checkpoint whose index was deferred,
// and notes it is no longer: one that fails is not tried again.
func (r *Replica) nextDeferred() (uint64, bool) {
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, false
	}
	for _, cp := range h.cps {
		if cp.deferred {
			cp.deferred = false
			if cp.state == nil {
				return cp.seq, true
			}
		}
	}
	return 0, false
}
