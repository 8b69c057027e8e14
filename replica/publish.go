package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	iam "github.com/iam-project/iam"
)

// SnapshotBucket is where a region's snapshots are stored and read from:
// the hub's Object Store bucket (*snapshots.Store in eventlog/snapshots,
// whose doc gives the errors).
type SnapshotBucket interface {
	// List returns the stored snapshots, newest first.
	List(ctx context.Context) ([]iam.SnapshotInfo, error)
	// Latest returns the newest snapshot; not_found when there is none.
	Latest(ctx context.Context) (iam.SnapshotInfo, error)
	// Open streams the snapshot called name; close it.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Put stores the snapshot read from r and returns its stored info.
	Put(ctx context.Context, info iam.SnapshotInfo, r io.Reader) (iam.SnapshotInfo, error)
}

// Defaults of Publisher.
const (
	DefaultSnapshotEvery    = 100_000
	DefaultSnapshotInterval = time.Hour
	defaultSnapshotCheck    = 10 * time.Second
)

// Publisher stores snapshots of Replica in the snapshot bucket: on request
// (Publish), and, once started, now and then: once Every entries were
// applied since the newest stored snapshot, or Interval after it when
// anything was, only while Leader says so (one process of a hub: the
// stream leader's). Configure the fields, then Start; Stop ends the loop.
// Publish is safe for concurrent use: snapshots of one Publisher go one at
// a time, since two at the same position would store the same object
// twice.
type Publisher struct {
	Replica *Replica
	// Bucket opens the snapshot bucket; with create it makes the bucket
	// when missing, without it a missing bucket is not_found. Required.
	Bucket func(ctx context.Context, create bool) (SnapshotBucket, error)
	// Every is the number of applied entries that calls for a snapshot.
	// Default DefaultSnapshotEvery.
	Every uint64
	// Interval is the longest time between snapshots while the log moves.
	// Default DefaultSnapshotInterval.
	Interval time.Duration
	// Check is how often the loop looks at the conditions. Default 10s (or
	// Interval, if shorter).
	Check time.Duration
	// Leader reports whether this process should publish periodically.
	// nil: always.
	Leader func() bool
	Logger *slog.Logger
	// Now stamps snapshots and times the loop's conditions. Default
	// time.Now.
	Now func() time.Time
	// Signer, if set, signs every snapshot's header (the hub's log key).
	Signer SnapshotSigner

	mu     sync.Mutex // one snapshot at a time
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (p *Publisher) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// Publish stores a snapshot of the replica's read model as it is now in
// the bucket (made if missing), unless the bucket already holds one at or
// past the replica's position, which it then returns. The replica goes on
// applying meanwhile: the snapshot reads a pinned Pebble state.
//
// Errors: conflict when the replica has applied nothing; others from the
// bucket.
func (p *Publisher) Publish(ctx context.Context) (iam.SnapshotInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bucket, err := p.Bucket(ctx, true)
	if err != nil {
		return iam.SnapshotInfo{}, err
	}
	rep := p.Replica
	snap, err := rep.Store().Snapshot()
	if err != nil {
		return iam.SnapshotInfo{}, err
	}
	defer snap.Close()
	d := snap.Digest()
	if d.Seq == 0 {
		return iam.SnapshotInfo{}, iam.Errorf(iam.EConflict, "region %s has applied nothing to snapshot", rep.Region())
	}
	if latest, err := bucket.Latest(ctx); err == nil && latest.Seq >= d.Seq {
		return latest, nil
	}
	now := p.now()
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		_, _, err := snap.Write(pw, SnapshotOptions{Now: func() time.Time { return now }, Signer: p.Signer})
		pw.CloseWithError(err)
		written <- err
	}()
	info, err := bucket.Put(ctx, iam.SnapshotInfo{Seq: d.Seq, MsgID: d.MsgID, Rows: d.Rows, Digest: d.SHA256, Created: now}, pr)
	pr.CloseWithError(errors.New("snapshot upload ended")) // unblocks the writer if Put gave up
	if werr := <-written; err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return iam.SnapshotInfo{}, fmt.Errorf("publish snapshot of %s at %d: %w", rep.Region(), d.Seq, err)
	}
	return info, nil
}

// PublishCurrent is Publish once the replica has applied the log's head as
// of the call (fully_consistent, waiting up to wait): a snapshot asked for
// holds every write acknowledged before it was asked for. Errors: as
// Publish; replica_behind when the replica does not catch up in time.
func (p *Publisher) PublishCurrent(ctx context.Context, wait time.Duration) (iam.SnapshotInfo, error) {
	if err := p.Replica.Ensure(ctx, Consistency{Mode: iam.FullyConsistent, Wait: wait}); err != nil {
		return iam.SnapshotInfo{}, err
	}
	return p.Publish(ctx)
}

// List returns the stored snapshots, newest first (none when there is no
// bucket yet).
func (p *Publisher) List(ctx context.Context) ([]iam.SnapshotInfo, error) {
	bucket, err := p.Bucket(ctx, false)
	if iam.ErrorCode(err) == iam.ENotFound {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return bucket.List(ctx)
}

// Region names the region whose read model is published.
func (p *Publisher) Region() string { return p.Replica.Region() }

// Start starts the periodic loop, which ends with ctx or Stop.
func (p *Publisher) Start(ctx context.Context) error {
	if p.Bucket == nil || p.Replica == nil {
		return errors.New("snapshot publisher: Bucket and Replica are required")
	}
	if p.Every == 0 {
		p.Every = DefaultSnapshotEvery
	}
	if p.Interval <= 0 {
		p.Interval = DefaultSnapshotInterval
	}
	if p.Check <= 0 {
		p.Check = min(defaultSnapshotCheck, p.Interval)
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(1)
	go p.run(ctx)
	return nil
}

// Stop stops the loop and waits for a snapshot in progress.
func (p *Publisher) Stop() {
	if p.cancel != nil {
		p.cancel()
		p.wg.Wait()
	}
}

func (p *Publisher) run(ctx context.Context) {
	defer p.wg.Done()
	log := p.Logger.With("region", p.Replica.Region())
	t := time.NewTicker(p.Check)
	defer t.Stop()
	var lastSeq uint64
	var lastAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.Leader != nil && !p.Leader() {
			continue
		}
		if lastAt.IsZero() {
			// Learn where the bucket stands (another process may have led).
			lastAt = p.now()
			if bucket, err := p.Bucket(ctx, false); err == nil {
				if latest, err := bucket.Latest(ctx); err == nil {
					lastSeq, lastAt = latest.Seq, latest.Created
				}
			}
		}
		applied := p.Replica.Applied()
		if applied <= lastSeq || (applied-lastSeq < p.Every && p.now().Sub(lastAt) < p.Interval) {
			continue
		}
		start := p.now()
		info, err := p.Publish(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("periodic snapshot", "err", err)
			}
			continue
		}
		lastSeq, lastAt = info.Seq, p.now()
		log.Info("snapshot published", "seq", info.Seq, "rows", info.Rows, "bytes", info.Size, "took", p.now().Sub(start).Round(time.Millisecond))
	}
}
