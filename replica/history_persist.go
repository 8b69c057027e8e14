package replica

// Checkpoint files: each checkpoint's Pebble snapshot is written, in the
// background, as a file in the snapshot format (snapshot.go), so that
// checkpoints outlive the process. docs/history.md says why files and not
// Pebble checkpoints.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"

	iam "github.com/iam-project/iam"
)

const checkpointExt = ".ckpt"

// checkpointName names the file of the checkpoint at seq (zero-padded, so
// that names sort as positions do).
func checkpointName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, checkpointExt) }

// checkpointSeq is the position a checkpoint file is named for; false for
// anything else (a file cut short, with its temporary name).
func checkpointSeq(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, checkpointExt)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// persistIdle is how long the persister rests after writing a file, as a
// multiple of the time the file took: it takes at most half a core from a
// replica that applies while it writes; Close writes what it has not
// reached, for Config.PersistAtClose at most. (At 3, a quarter of a core,
// a 1M-entry replica under load still had 25 s of files to write at
// Close.)
const persistIdle = 1

// A replica that applied more than persistBusy entries in the last
// persistProbe is catching up: it takes a checkpoint every few
// milliseconds, thinning drops most of them before their file could
// matter, and each file is the whole read model, so writing them then
// took a third of a replay's time on 2 cores (docs/benchmarks.md). The
// persister waits until the apply slows (live traffic is far below this
// rate), or persistMaxDefer at most, so that a sustained burst still
// gets its files.
const (
	persistProbe    = 100 * time.Millisecond
	persistBusy     = 2000 // entries per probe: 20k entries/s
	persistMaxDefer = 30 * time.Second
)

// persistLoop builds the indexes a catch-up deferred and writes the file
// of each checkpoint that has none, oldest first, whenever one is taken
// and the replica is not catching up, until ctx ends. A file that fails (a
// full disk) is tried again at the next checkpoint; meanwhile the snapshot
// serves.
func (r *Replica) persistLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.hist.wake:
		}
		for r.awaitSlowApply(ctx) {
			// The indexes first: they are what makes a past read fast,
			// the files only what makes it fast after a restart.
			_ = r.buildDeferredIndexes(ctx)
			start := time.Now()
			if done, err := r.persistOne(ctx); done || err != nil {
				break
			}
			rest := time.NewTimer(persistIdle * time.Since(start))
			select {
			case <-ctx.Done():
			case <-rest.C:
			}
			rest.Stop()
		}
	}
}

// awaitSlowApply waits until the replica is current (awaitCurrent), or
// persistMaxDefer passes; false when ctx ends first.
func (r *Replica) awaitSlowApply(ctx context.Context) bool {
	if r.awaitCurrent(ctx, r.logHead(ctx), persistMaxDefer) {
		// Compactions held back since (holdCompactions) may run.
		r.store.releaseCompactions()
		return true
	}
	return ctx.Err() == nil
}

// awaitCurrent waits until the replica has applied head (the log's as it
// stood when the wait began, logHead; 0 when unknown) and a probe then
// sees fewer than persistBusy entries applied: caught up, or the log gone
// quiet. It
// reports whether it saw that, rather than ctx end or, when maxWait is not
// 0, maxWait pass. By the rate alone, a replay's pause (a fetch, a
// collection) ended bulk catch-ups part way, and a joined region's tail,
// applied in bursts around the projector's fetches, saw a checkpoint's
// file (a pass over the whole read model) and the fill of its history (a
// replay of the log before the snapshot) take the two cores from it.
func (r *Replica) awaitCurrent(ctx context.Context, head uint64, maxWait time.Duration) bool {
	probe := time.NewTicker(persistProbe)
	defer probe.Stop()
	var deadline <-chan time.Time
	if maxWait > 0 {
		timer := time.NewTimer(maxWait)
		defer timer.Stop()
		deadline = timer.C
	}
	last := r.entries.Load()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-probe.C:
			n := r.entries.Load()
			if n-last < persistBusy && r.Applied() >= head {
				return true
			}
			last = n
		}
	}
}

// logHead is the log's head, or 0 when it cannot be had (no Config.Head,
// or the lookup fails).
func (r *Replica) logHead(ctx context.Context) uint64 {
	if r.cfg.Head == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, headLookupTimeout)
	defer cancel()
	head, err := r.heads.get(ctx)
	if err != nil {
		return 0
	}
	return head
}

// persistAll writes the file of every checkpoint that has none, newest
// first (persistOne), until ctx ends.
func (r *Replica) persistAll(ctx context.Context) error {
	for {
		if done, err := r.persistOne(ctx); done || err != nil {
			return err
		}
	}
}

// persistOne writes the file of the newest checkpoint without one; done
// when there is none left. Newest first: recent positions are the ones
// most read, so a Close cut short leaves out the oldest of them, which
// the next Open fills in from the log in the background
// (history_fill.go). A write that ctx cuts short leaves no file.
func (r *Replica) persistOne(ctx context.Context) (done bool, err error) {
	h := &r.hist
	h.mu.Lock()
	var cp *checkpoint
	for _, c := range slices.Backward(h.cps) {
		if c.file == "" && !c.persisting && c.snap != nil {
			cp = c
			break
		}
	}
	if cp == nil {
		h.mu.Unlock()
		return true, nil
	}
	cp.refs++
	cp.persisting = true
	h.mu.Unlock()

	file, err := writeCheckpointFile(ctx, r.fs(), checkpointDir(r.cfg.Dir), cp.seq, cp.snap)

	h.mu.Lock()
	cp.persisting = false
	if err == nil {
		cp.file = file
	}
	h.mu.Unlock()
	r.release(cp) // removes the file if cp was thinned meanwhile
	return false, err
}

// writeCheckpointFile writes snap, the read model at seq, to its file in
// root: under a temporary name, synced, then renamed, so that a file with
// a checkpoint's name is whole. When ctx ends it gives up at the next few
// thousand rows or buffer written, and removes what it wrote.
func writeCheckpointFile(ctx context.Context, fs vfs.FS, root string, seq uint64, snap reader) (string, error) {
	d, err := digestOf(ctx, snap)
	if err != nil {
		return "", err
	}
	if d.Seq != seq {
		return "", fmt.Errorf("checkpoint %d holds position %d", seq, d.Seq)
	}
	path := fs.PathJoin(root, checkpointName(seq))
	tmp := path + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return "", err
	}
	sn := &Snapshot{digest: d}
	w := bufio.NewWriterSize(ctxWriter{ctx, f}, 256<<10)
	_, _, err = sn.write(w, snap, SnapshotOptions{})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		_ = fs.Remove(tmp)
		return "", fmt.Errorf("write checkpoint %d: %w", seq, err)
	}
	return path, nil
}

// ctxWriter fails its writes once ctx has ended.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// loadCheckpointFile loads the rows of the checkpoint file at path into
// the empty st, checking them against the file's digest and position.
func loadCheckpointFile(fs vfs.FS, path string, seq uint64, st *iam.State) error {
	f, err := fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, br, err := ReadSnapshotHeader(f)
	if err != nil {
		return err
	}
	if h.Seq != seq {
		return fmt.Errorf("%w: checkpoint %d holds position %d", ErrSnapshotCorrupt, seq, h.Seq)
	}
	var body io.Reader = br
	switch h.Compression {
	case CompressionNone:
	case CompressionZstd:
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderLowmem(false))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSnapshotCorrupt, err)
		}
		defer dec.Close()
		body = dec
	default:
		return fmt.Errorf("%w: compression %q", ErrSnapshotCorrupt, h.Compression)
	}
	index := newIndexLoader(st)
	defer index.stop()
	rows := &rowReader{r: bufio.NewReaderSize(body, 256<<10), hash: newRowHasher(), index: index}
	for {
		_, _, ok, err := rows.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
	}
	return rows.verify(h, Position{Seq: h.Seq, MsgID: h.MsgID})
}
