package replica

// Filling in the checkpoints a read model lacks: before its first one (a
// region joined from a snapshot, or a read model written before
// checkpoints were kept on disk), and between files a Close cut short or a
// crash left apart. docs/history.md says why the region replays its own
// log rather than fetch checkpoints from another.

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	iam "github.com/iam-project/iam"
)

// fillBatch is how many entries the fill hands its scratch replica at once
// (as the projector does).
const fillBatch = 512

// historyFrom makes the read model as it now stands at pos a checkpoint
// when it has none and, when part of the history is missing, fills it in
// the background once the replica is current (awaitCurrent), newest
// part first: before the first
// checkpoint (a joined snapshot's position, or one opened from before
// checkpoints were kept on disk), and between two checkpoints, or the last
// and pos, more than two spacings apart (files a Close cut short, or a
// crash, left out). r.applyMu is held, or nothing is applied yet.
func (r *Replica) historyFrom(pos uint64) {
	if pos == 0 || r.cfg.historyFill {
		// A fill's scratch starts at a checkpoint the live replica has
		// (its file) or at none: it needs no checkpoint there.
		return
	}
	if len(r.Checkpoints()) == 0 {
		r.checkpointLocked(pos)
	}
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.cps) == 0 || r.cfg.History == nil || h.stopFill != nil {
		return
	}
	type gap struct {
		from *checkpoint // nil: from the first entry
		upTo uint64
	}
	var gaps []gap
	if end := h.cps[len(h.cps)-1]; pos-end.seq > 2*h.every && end.file != "" {
		gaps = append(gaps, gap{end, pos + 1})
	}
	for i := len(h.cps) - 1; i > 0; i-- {
		if a, b := h.cps[i-1], h.cps[i]; b.seq-a.seq > 2*h.every && a.file != "" {
			gaps = append(gaps, gap{a, b.seq})
		}
	}
	if first := h.cps[0].seq; first > r.cfg.CheckpointEvery {
		gaps = append(gaps, gap{nil, first})
	}
	if len(gaps) == 0 {
		return
	}
	for _, g := range gaps {
		if g.from != nil {
			g.from.refs++ // its file is read by the fill
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	h.stopFill = func() { cancel(); <-done }
	go func() {
		defer close(done)
		// After the replica is current (persistMaxDefer at most, as the
		// files): until then the fill would take the cores from the
		// apply. Past positions in the gaps are replayed from the first
		// entry meanwhile.
		r.awaitCurrent(ctx, r.logHead(ctx), persistMaxDefer)
		for _, g := range gaps {
			// A fill that fails leaves the history as it was: positions
			// in the gap are replayed from the checkpoint before it (or
			// the first entry), slower but the same answers.
			if ctx.Err() == nil {
				_ = r.fill(ctx, g.from, g.upTo)
			}
			if g.from != nil {
				r.release(g.from)
			}
		}
	}()
}

// fill replays the log from after from (from its file; nil: from the
// first entry) to before upTo into a scratch replica beside the read
// model, which takes its checkpoints as the live one does, writes their
// files, moves them to the live one's and is dropped.
func (r *Replica) fill(ctx context.Context, from *checkpoint, upTo uint64) error {
	fs, dir := r.fs(), r.cfg.Dir+".fill"
	for _, d := range []string{dir, checkpointDir(dir)} {
		if err := fs.RemoveAll(d); err != nil {
			return err
		}
	}
	defer func() {
		_ = fs.RemoveAll(dir)
		_ = fs.RemoveAll(checkpointDir(dir))
	}()
	scratch, err := Open(Config{Region: r.cfg.Region + " (history fill)", Dir: dir, FS: r.cfg.FS, Limits: r.cfg.Limits,
		CheckpointEvery: r.cfg.CheckpointEvery, MaxCheckpoints: r.cfg.MaxCheckpoints, CheckpointMemory: -1, historyFill: true})
	if err != nil {
		return err
	}
	defer scratch.Close()
	start := uint64(1)
	if from != nil {
		if err := loadFillStart(ctx, scratch, from); err != nil {
			return fmt.Errorf("fill the history of %s after %d: %w", r.cfg.Region, from.seq, err)
		}
		start = from.seq + 1
	}
	batch := make([]iam.LogEntry, 0, fillBatch)
	flush := func() error {
		err := scratch.ApplyEntries(batch)
		batch = batch[:0]
		return err
	}
	if upTo > start {
		err = r.cfg.History(ctx, start, upTo-1, func(e iam.LogEntry) error {
			if batch = append(batch, e); len(batch) == fillBatch {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return fmt.Errorf("fill the history of %s from %d to %d: %w", r.cfg.Region, start, upTo, err)
		}
	}
	if err := scratch.persistAll(ctx); err != nil {
		return err
	}
	scratch.hist.mu.Lock()
	var filled []*checkpoint
	for _, cp := range scratch.hist.cps {
		filled = append(filled, &checkpoint{seq: cp.seq, file: cp.file})
	}
	every := scratch.hist.every
	scratch.hist.mu.Unlock()
	root := checkpointDir(r.cfg.Dir)
	var moved []*checkpoint
	for _, cp := range filled {
		to := fs.PathJoin(root, fs.PathBase(cp.file))
		if err := fs.Rename(cp.file, to); err != nil {
			return err
		}
		moved = append(moved, &checkpoint{seq: cp.seq, file: to})
	}
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		// Kept on disk: the next Open finds them.
		return nil
	}
	bySeq := func(a, b *checkpoint) int { return cmp.Compare(a.seq, b.seq) }
	var added []*checkpoint
	for _, cp := range moved {
		if _, held := slices.BinarySearchFunc(h.cps, cp, bySeq); !held {
			added = append(added, cp)
		}
	}
	h.cps = append(h.cps, added...)
	slices.SortFunc(h.cps, bySeq)
	h.every = max(h.every, every)
	r.thinLocked()
	return nil
}

// loadFillStart loads the file of checkpoint from into the empty scratch
// replica: the fill of a gap starts there.
func loadFillStart(ctx context.Context, scratch *Replica, from *checkpoint) error {
	f, err := scratch.fs().Open(from.file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = scratch.LoadSnapshot(ctx, f, LoadOptions{})
	return err
}
