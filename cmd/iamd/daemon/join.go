package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// Joining a region from a snapshot, digests and periodic snapshots: the
// wiring of docs/joining.md, kept apart from daemon.go.

var _ projector.Sink = (*replica.Replica)(nil)

// joinState is Main's part of it.
type joinState struct {
	// joined is the snapshot each region loaded at start (absent: none).
	joined map[string]replica.SnapshotHeader
	// snapshotter publishes the hub's snapshots.
	snapshotter *api.Snapshotter
}

// stop ends the snapshotter.
func (j *joinState) stop() {
	if j.snapshotter != nil {
		j.snapshotter.Stop()
	}
}

// fromSnapshot loads the newest snapshot of the hub's bucket into rep when
// it is empty, so that its projector goes on from the snapshot's position
// instead of sequence 1; the index is built as the rows stream in. When
// the bucket has none, or none of those in it loads (each is verified
// against its digest before anything is committed), rep stays empty and
// replays the log as before. Only a cancelled start is an error.
func (j *joinState) fromSnapshot(ctx context.Context, log *eventlog.Log, rep *replica.Replica, logger *slog.Logger) error {
	if rep.Applied() != 0 {
		return nil
	}
	region := rep.Region()
	logger = logger.With("region", region)
	store, err := snapshots.Open(ctx, log, false)
	if iam.ErrorCode(err) == iam.ENotFound {
		logger.Info("no snapshot to join from; replaying the log")
		return nil
	} else if err != nil {
		logger.Warn("snapshots unavailable; replaying the log", "err", err)
		return nil
	}
	all, err := store.List(ctx)
	if err != nil || len(all) == 0 {
		logger.Info("no snapshot to join from; replaying the log", "err", err)
		return nil
	}
	for _, info := range all {
		start := time.Now()
		h, err := loadSnapshot(ctx, store, info, rep)
		if errors.Is(err, replica.ErrNotEmpty) {
			return nil // rows without a position: leave them to the projector
		} else if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("join %s: %w", region, err)
			}
			logger.Warn("snapshot not loaded", "snapshot", info.Name, "err", err)
			continue
		}
		if j.joined == nil {
			j.joined = map[string]replica.SnapshotHeader{}
		}
		j.joined[region] = h
		logger.Info("joined from snapshot", "snapshot", info.Name, "seq", h.Seq, "rows", h.Rows, "bytes", info.Size,
			"took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	logger.Warn("no snapshot could be loaded; replaying the log")
	return nil
}

func loadSnapshot(ctx context.Context, store *snapshots.Store, info snapshots.Info, rep *replica.Replica) (replica.SnapshotHeader, error) {
	r, err := store.Open(ctx, info.Name)
	if err != nil {
		return replica.SnapshotHeader{}, err
	}
	defer r.Close()
	return rep.LoadSnapshot(ctx, r, replica.LoadOptions{})
}

// startSnapshots starts the hub's periodic snapshots of rep.
func (j *joinState) startSnapshots(ctx context.Context, m *Main, rep *replica.Replica, logger *slog.Logger) error {
	c := m.Config
	if c.SnapshotEvery == 0 && c.SnapshotInterval <= 0 {
		return nil
	}
	j.snapshotter = &api.Snapshotter{Log: m.log, Replica: rep, Every: c.SnapshotEvery, Interval: c.SnapshotInterval, Logger: logger,
		Leader: func() bool { return natsnode.StreamLeader(m.ns, m.log.StreamName()) }}
	return j.snapshotter.Start(ctx)
}
