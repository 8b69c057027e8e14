package daemon

import (
	"context"
	"log/slog"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// Joining a region from a snapshot and the hub's snapshots: the wiring of
// docs/joining.md (the behaviour is replica.Join and replica.Publisher).

var (
	_ projector.Sink         = (*replica.Replica)(nil)
	_ replica.SnapshotBucket = (*snapshots.Store)(nil)
)

// joinState is Main's part of it.
type joinState struct {
	// joined is the snapshot each region loaded at start (absent: none).
	joined map[string]replica.SnapshotHeader
	// publisher publishes the default region's snapshots: on request
	// (api), and periodically on the hub.
	publisher *replica.Publisher
}

// snapshotBucket opens log's snapshot bucket, for replica.Publisher.
func snapshotBucket(log *eventlog.Log) func(ctx context.Context, create bool) (replica.SnapshotBucket, error) {
	return func(ctx context.Context, create bool) (replica.SnapshotBucket, error) {
		b, err := snapshots.Open(ctx, log, create)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

// stop ends the periodic snapshots.
func (j *joinState) stop() {
	if j.publisher != nil {
		j.publisher.Stop()
	}
}

// fromSnapshot loads the hub's newest snapshot into rep when it is empty
// (replica.Join). Without a snapshot bucket rep stays empty and replays
// the log. Only a cancelled start is an error.
func (j *joinState) fromSnapshot(ctx context.Context, log *eventlog.Log, rep *replica.Replica, logger *slog.Logger) error {
	if rep.Applied() != 0 {
		return nil
	}
	bucket, err := snapshots.Open(ctx, log, false)
	if iam.ErrorCode(err) == iam.ENotFound {
		logger.Info("no snapshot to join from; replaying the log", "region", rep.Region())
		return nil
	} else if err != nil {
		logger.Warn("snapshots unavailable; replaying the log", "region", rep.Region(), "err", err)
		return nil
	}
	h, ok, err := replica.Join(ctx, bucket, rep, logger)
	if err != nil || !ok {
		return err
	}
	if j.joined == nil {
		j.joined = map[string]replica.SnapshotHeader{}
	}
	j.joined[rep.Region()] = h
	return nil
}

// newPublisher makes the publisher of rep's snapshots.
func (j *joinState) newPublisher(m *Main, rep *replica.Replica, logger *slog.Logger) *replica.Publisher {
	c := m.Config
	j.publisher = &replica.Publisher{Replica: rep, Bucket: snapshotBucket(m.log), Every: c.SnapshotEvery, Interval: c.SnapshotInterval,
		Logger: logger, Leader: func() bool { return natsnode.StreamLeader(m.ns, m.log.StreamName()) }}
	return j.publisher
}

// startSnapshots starts the hub's periodic snapshots, if configured.
func (j *joinState) startSnapshots(ctx context.Context, m *Main) error {
	c := m.Config
	if j.publisher == nil || (c.SnapshotEvery == 0 && c.SnapshotInterval <= 0) {
		return nil
	}
	return j.publisher.Start(ctx)
}
