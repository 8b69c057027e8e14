package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	iam "github.com/iam-project/iam"
)

// Join loads the newest snapshot of the bucket open opens (without creating
// it) that loads into rep when rep is empty, so that its projector goes on from the snapshot's position
// instead of sequence 1; the index is built as the rows stream in. Each
// snapshot is verified against its digest before anything is committed;
// one that does not load is skipped for the one before. It returns the
// header of the snapshot loaded and true, or false when rep was not empty
// or no snapshot loaded (there is no bucket, it is empty or unreachable,
// or none of its snapshots loads): rep then stays as it was and replays
// the log.
// Start rep's projector after Join returns.
//
// Errors: only a cancelled ctx; every other failure is logged and leaves
// rep to replay.
func Join(ctx context.Context, open func(ctx context.Context, create bool) (SnapshotBucket, error), rep *Replica, logger *slog.Logger) (SnapshotHeader, bool, error) {
	if rep.Applied() != 0 {
		return SnapshotHeader{}, false, nil
	}
	if logger == nil {
		logger = slog.Default()
	}
	region := rep.Region()
	logger = logger.With("region", region)
	bucket, err := open(ctx, false)
	var all []iam.SnapshotInfo
	if err == nil {
		all, err = bucket.List(ctx)
	}
	if err != nil || len(all) == 0 {
		if ctx.Err() != nil {
			return SnapshotHeader{}, false, fmt.Errorf("join %s: %w", region, ctx.Err())
		}
		logger.Info("no snapshot to join from; replaying the log", "err", err)
		return SnapshotHeader{}, false, nil
	}
	for _, info := range all {
		start := rep.cfg.Now()
		h, downloaded, err := loadFrom(ctx, bucket, info, rep)
		if errors.Is(err, ErrNotEmpty) {
			return SnapshotHeader{}, false, nil // rows without a position: leave them to the projector
		} else if err != nil {
			if ctx.Err() != nil {
				return SnapshotHeader{}, false, fmt.Errorf("join %s: %w", region, err)
			}
			logger.Warn("snapshot not loaded", "snapshot", info.Name, "err", err)
			continue
		}
		// The download apart: it is bound by the link, the rest (verify,
		// load, index) by the CPU.
		logger.Info("joined from snapshot", "snapshot", info.Name, "seq", h.Seq, "rows", h.Rows, "bytes", info.Size,
			"downloaded", downloaded.Round(time.Millisecond), "took", rep.cfg.Now().Sub(start).Round(time.Millisecond))
		return h, true, nil
	}
	logger.Warn("no snapshot could be loaded; replaying the log")
	return SnapshotHeader{}, false, nil
}

// loadFrom loads the snapshot info of bucket into rep, and returns how long
// the download took. It downloads the
// snapshot to a file beside the read model first, then loads the file:
// the Object Store's reader gives the whole transfer a deadline (nats.go's
// default API timeout, 5 s, when the context has none), and a load that
// built the index while streaming outlasted it at 1M rows on a busy
// machine ("nats: timeout" part way, so the region fell back to a full
// replay). Downloading is bound by the link, loading by the CPU: each gets
// its own pace.
func loadFrom(ctx context.Context, bucket SnapshotBucket, info iam.SnapshotInfo, rep *Replica) (SnapshotHeader, time.Duration, error) {
	fs := rep.cfg.FS
	path := filepath.Clean(rep.cfg.Dir) + ".snapshot"
	if err := fs.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return SnapshotHeader{}, 0, err
	}
	start := rep.cfg.Now()
	w, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return SnapshotHeader{}, 0, err
	}
	defer fs.Remove(path)
	err = download(ctx, bucket, info, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	downloaded := rep.cfg.Now().Sub(start)
	if err != nil {
		return SnapshotHeader{}, downloaded, fmt.Errorf("download snapshot %s: %w", info.Name, err)
	}
	f, err := fs.Open(path)
	if err != nil {
		return SnapshotHeader{}, downloaded, err
	}
	defer f.Close()
	h, err := rep.LoadSnapshot(ctx, bufio.NewReaderSize(f, 256<<10), LoadOptions{})
	return h, downloaded, err
}

// minDownloadRate is the slowest link a snapshot download is given time
// for, beside a minute for any size.
const minDownloadRate = 1 << 20 // bytes per second

// download copies the snapshot info of bucket to w, within a deadline
// sized for it at minDownloadRate.
func download(ctx context.Context, bucket SnapshotBucket, info iam.SnapshotInfo, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(info.Size/minDownloadRate)*time.Second)
	defer cancel()
	r, err := bucket.Open(ctx, info.Name)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}
