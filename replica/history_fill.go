package replica

// Filling in the checkpoints a read model lacks before its first one: a
// region joined from a snapshot, or a read model written before
// checkpoints were kept on disk. docs/history.md says why the region
// replays its own log rather than fetch checkpoints from another.

import (
	"context"
	"fmt"

	iam "github.com/iam-project/iam"
)

// fillBatch is how many entries the fill hands its scratch replica at once
// (as the projector does).
const fillBatch = 512

// historyFrom makes the read model as it now stands at pos a checkpoint
// when it has none (a joined snapshot's position, or one opened from
// before checkpoints were kept on disk) and, when the history before the
// first checkpoint is missing, starts filling it in the background.
// r.applyMu is held, or nothing is applied yet.
func (r *Replica) historyFrom(pos uint64) {
	if pos == 0 {
		return
	}
	if len(r.Checkpoints()) == 0 {
		r.checkpointLocked(pos)
	}
	h := &r.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.cps) == 0 || r.cfg.History == nil || h.cps[0].seq <= r.cfg.CheckpointEvery || h.stopFill != nil {
		return
	}
	first := h.cps[0].seq
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	h.stopFill = func() { cancel(); <-done }
	go func() {
		defer close(done)
		// A fill that fails leaves the history as it was: positions
		// before the first checkpoint are replayed from the first entry,
		// slower but the same answers.
		_ = r.fill(ctx, first)
	}()
}

// fill replays the log before upTo into a scratch replica beside the read
// model, which takes its checkpoints as the live one does, writes their
// files, moves them to the live one's and is dropped.
func (r *Replica) fill(ctx context.Context, upTo uint64) error {
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
	batch := make([]iam.LogEntry, 0, fillBatch)
	flush := func() error {
		err := scratch.ApplyEntries(batch)
		batch = batch[:0]
		return err
	}
	if upTo > 1 {
		err = r.cfg.History(ctx, 1, upTo-1, func(e iam.LogEntry) error {
			if batch = append(batch, e); len(batch) == fillBatch {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return fmt.Errorf("fill the history of %s before %d: %w", r.cfg.Region, upTo, err)
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
	h.cps = append(moved, h.cps...)
	h.every = max(h.every, every)
	r.thinLocked()
	return nil
}
