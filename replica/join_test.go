package replica_test

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/replica"
)

var _ replica.SnapshotBucket = (*snapshots.Store)(nil)

// memBucket is a SnapshotBucket in memory.
type memBucket struct {
	mu    sync.Mutex
	infos []iam.SnapshotInfo // newest first
	data  map[string][]byte
}

func (b *memBucket) List(ctx context.Context) ([]iam.SnapshotInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.infos), nil
}

func (b *memBucket) Latest(ctx context.Context) (iam.SnapshotInfo, error) {
	all, _ := b.List(ctx)
	if len(all) == 0 {
		return iam.SnapshotInfo{}, iam.Errorf(iam.ENotFound, "no snapshot")
	}
	return all[0], nil
}

func (b *memBucket) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.data[name]
	if !ok {
		return nil, iam.Errorf(iam.ENotFound, "no snapshot %s", name)
	}
	return io.NopCloser(bytes.NewReader(d)), nil
}

// Put is as snapshots.Store's: seq 0 refused, the same name replaced,
// newest first, only the newest snapshots.DefaultKeep kept.
func (b *memBucket) Put(ctx context.Context, info iam.SnapshotInfo, r io.Reader) (iam.SnapshotInfo, error) {
	if info.Seq == 0 {
		return info, iam.FieldErrorf("seq", "a snapshot at position 0 holds nothing")
	}
	d, err := io.ReadAll(r)
	if err != nil {
		return info, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.data == nil {
		b.data = map[string][]byte{}
	}
	if info.Created.IsZero() {
		info.Created = time.Now()
	}
	info.Name, info.Size = snapshots.Name(info.Seq), uint64(len(d))
	b.data[info.Name] = d
	b.infos = slices.DeleteFunc(b.infos, func(o iam.SnapshotInfo) bool { return o.Name == info.Name })
	i, _ := slices.BinarySearchFunc(b.infos, info.Seq, func(o iam.SnapshotInfo, seq uint64) int { return cmp.Compare(seq, o.Seq) })
	b.infos = slices.Insert(b.infos, i, info)
	for _, old := range b.infos[min(snapshots.DefaultKeep, len(b.infos)):] {
		delete(b.data, old.Name)
	}
	b.infos = b.infos[:min(snapshots.DefaultKeep, len(b.infos))]
	return info, nil
}

func (b *memBucket) open(context.Context, bool) (replica.SnapshotBucket, error) { return b, nil }

// A Publisher stores a snapshot once per position; Join loads the newest
// that loads, skipping a corrupt one, and leaves a fed replica alone.
func TestPublisher_Join(t *testing.T) {
	ctx := context.Background()
	log := smallLog(300)
	src := openReplica(t, replica.Config{})
	bucket := &memBucket{}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pub := &replica.Publisher{Replica: src, Bucket: bucket.open, Now: func() time.Time { return now }}

	if _, err := pub.Publish(ctx); iam.ErrorCode(err) != iam.EConflict {
		t.Fatalf("publish an empty replica: got %v, want conflict", err)
	}
	applyAll(t, src, log[:200], 50)
	info, err := pub.Publish(ctx)
	if err != nil || info.Seq != 200 || !info.Created.Equal(now) {
		t.Fatalf("publish: got %+v (%v), want a snapshot at 200 created %s", info, err, now)
	}
	if again, err := pub.Publish(ctx); err != nil || again != info {
		t.Fatalf("publish at the same position: got %+v (%v), want the stored %+v", again, err, info)
	}
	// A newer snapshot that does not load.
	if _, err := bucket.Put(ctx, iam.SnapshotInfo{Seq: 250, MsgID: "x"}, bytes.NewReader([]byte("IAMSNAP\nnot a snapshot"))); err != nil {
		t.Fatal(err)
	}

	dst := openReplica(t, replica.Config{})
	var logged bytes.Buffer
	h, ok, err := replica.Join(ctx, bucket.open, dst, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil || !ok || h.Seq != 200 || dst.Applied() != 200 {
		t.Fatalf("join: got %+v, %t (%v), at %d, want the snapshot at 200", h.Digest, ok, err, dst.Applied())
	}
	// The log says which snapshot was skipped, which loaded, and how long
	// its download (bound by the link) and the whole join took.
	for _, want := range []string{"snapshot not loaded", "snapshot-00000000000000000250", "joined from snapshot",
		"snapshot-00000000000000000200", "downloaded=", "took="} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("join's log lacks %q:\n%s", want, logged.String())
		}
	}
	requireSameStores(t, dst, src, "joined")
	applyAll(t, dst, log, 50)
	applyAll(t, src, log, 50)
	if dst.AppliedEntries() != 100 {
		t.Fatalf("joined replica applied %d entries, want the 100 after the snapshot", dst.AppliedEntries())
	}
	requireSameStores(t, dst, src, "joined, then the tail")
	if _, ok, err := replica.Join(ctx, bucket.open, dst, quietLogger()); ok || err != nil {
		t.Fatalf("join a fed replica: got %t (%v), want false", ok, err)
	}
	if _, ok, err := replica.Join(ctx, (&memBucket{}).open, openReplica(t, replica.Config{}), quietLogger()); ok || err != nil {
		t.Fatalf("join from an empty bucket: got %t (%v), want false", ok, err)
	}
	noBucket := func(context.Context, bool) (replica.SnapshotBucket, error) {
		return nil, iam.Errorf(iam.ENotFound, "no snapshot bucket")
	}
	if _, ok, err := replica.Join(ctx, noBucket, openReplica(t, replica.Config{}), quietLogger()); ok || err != nil {
		t.Fatalf("join without a bucket: got %t (%v), want false", ok, err)
	}
}

// The periodic loop publishes once Every entries were applied.
func TestPublisher_Start(t *testing.T) {
	rep := openReplica(t, replica.Config{})
	bucket := &memBucket{}
	pub := &replica.Publisher{Replica: rep, Bucket: bucket.open, Every: 50, Check: time.Millisecond, Logger: quietLogger()}
	if err := pub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer pub.Stop()
	log := smallLog(120)
	applyAll(t, rep, log[:60], 60)
	eventlogtest.Eventually(t, 10*time.Second, "a snapshot at 60", func() bool {
		l, err := bucket.Latest(context.Background())
		return err == nil && l.Seq == 60
	})
	applyAll(t, rep, log, 60)
	eventlogtest.Eventually(t, 10*time.Second, "a snapshot at 120", func() bool {
		l, err := bucket.Latest(context.Background())
		return err == nil && l.Seq == 120
	})
}
