// Package snapshots stores read-model snapshots beside the log, in a
// JetStream Object Store bucket of the hub. The hub (or any replica that is
// up to date) writes one now and then; a new region downloads the newest
// across its leaf connection (its log is attached with the hub's domain)
// instead of replaying the log from sequence 1. The bytes are opaque here:
// package replica writes and reads them.
package snapshots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
)

const (
	// Bucket is the Object Store bucket holding snapshots.
	Bucket = "IAM_SNAPSHOTS"
	// DefaultKeep is how many snapshots Put keeps: the newest and
	// the one before it, which a region may still be downloading.
	DefaultKeep = 2
	// snapshotChunk is the size of one chunk message: well under a leaf
	// link's 1 MiB max payload.
	snapshotChunk = 256 << 10
)

// Object metadata keys of a snapshot.
const (
	metaSeq     = "iam-seq"
	metaMsgID   = "iam-msg-id"
	metaRows    = "iam-rows"
	metaDigest  = "iam-digest"
	metaCreated = "iam-created"
)

// Name is the object name of the snapshot at seq; names sort in
// sequence order.
func Name(seq uint64) string { return fmt.Sprintf("snapshot-%020d", seq) }

// Store is the bucket of snapshots. It is safe for concurrent use.
type Store struct {
	obs jetstream.ObjectStore
	// Keep is how many snapshots Put leaves (newest first); others are
	// deleted. Default DefaultKeep.
	Keep int
	// Now stamps a snapshot put without a creation time. Default time.Now.
	Now func() time.Time
}

// Open opens the snapshot bucket in the log's domain. With create it
// makes the bucket when missing (on the hub: file storage, as many replicas
// as the stream); without, a missing bucket is not_found (a region never
// creates anything in the hub's domain).
func Open(ctx context.Context, l *eventlog.Log, create bool) (*Store, error) {
	obs, err := l.JetStream().ObjectStore(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return nil, fmt.Errorf("snapshots: %w", iam.Errorf(iam.ENotFound, "no snapshot bucket %s", Bucket))
		}
		obs, err = l.JetStream().CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      Bucket,
			Description: "iam read-model snapshots (see docs/joining.md)",
			Storage:     jetstream.FileStorage,
			Replicas:    l.Replicas(),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: bucket %s: %w", Bucket, err)
	}
	return &Store{obs: obs, Keep: DefaultKeep, Now: time.Now}, nil
}

// Put stores the snapshot read from r under Name(info.Seq), with
// info's position, rows and digest as metadata, then deletes all but the
// newest Keep snapshots. It returns the stored info (with Size). A failed
// Put leaves no partial object.
func (s *Store) Put(ctx context.Context, info iam.SnapshotInfo, r io.Reader) (iam.SnapshotInfo, error) {
	if info.Seq == 0 {
		return info, fmt.Errorf("put snapshot: %w", iam.FieldErrorf("seq", "a snapshot at position 0 holds nothing"))
	}
	if info.Created.IsZero() {
		info.Created = s.Now()
	}
	info.Name = Name(info.Seq)
	meta := jetstream.ObjectMeta{
		Name:        info.Name,
		Description: "read model at sequence " + strconv.FormatUint(info.Seq, 10),
		Metadata: map[string]string{
			metaSeq:     strconv.FormatUint(info.Seq, 10),
			metaMsgID:   info.MsgID,
			metaRows:    strconv.FormatUint(info.Rows, 10),
			metaDigest:  info.Digest,
			metaCreated: info.Created.UTC().Format(time.RFC3339Nano),
		},
		Opts: &jetstream.ObjectMetaOptions{ChunkSize: snapshotChunk},
	}
	oi, err := s.obs.Put(ctx, meta, fullReader{r})
	if err != nil {
		return info, fmt.Errorf("put snapshot %s: %w", info.Name, err)
	}
	info.Size = oi.Size
	if err := s.prune(ctx); err != nil {
		return info, err
	}
	return info, nil
}

// prune deletes all but the newest Keep snapshots.
func (s *Store) prune(ctx context.Context) error {
	keep := s.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	for _, old := range all[min(keep, len(all)):] {
		if err := s.obs.Delete(ctx, old.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("prune snapshot %s: %w", old.Name, err)
		}
	}
	return nil
}

// List returns the stored snapshots, newest (highest sequence) first.
// Objects that are not snapshots are skipped.
func (s *Store) List(ctx context.Context) ([]iam.SnapshotInfo, error) {
	objs, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := make([]iam.SnapshotInfo, 0, len(objs))
	for _, o := range objs {
		if info, ok := snapshotInfo(o); ok {
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b iam.SnapshotInfo) int {
		switch {
		case a.Seq > b.Seq:
			return -1
		case a.Seq < b.Seq:
			return 1
		}
		return 0
	})
	return out, nil
}

func snapshotInfo(o *jetstream.ObjectInfo) (iam.SnapshotInfo, bool) {
	md := o.Metadata
	seq, err := strconv.ParseUint(md[metaSeq], 10, 64)
	if err != nil || seq == 0 || o.Deleted {
		return iam.SnapshotInfo{}, false
	}
	rows, _ := strconv.ParseUint(md[metaRows], 10, 64)
	created, _ := time.Parse(time.RFC3339Nano, md[metaCreated])
	return iam.SnapshotInfo{Name: o.Name, Seq: seq, MsgID: md[metaMsgID], Rows: rows, Digest: md[metaDigest],
		Size: o.Size, Created: created}, true
}

// Latest returns the newest snapshot. Errors: not_found when there is none.
func (s *Store) Latest(ctx context.Context) (iam.SnapshotInfo, error) {
	all, err := s.List(ctx)
	if err != nil {
		return iam.SnapshotInfo{}, err
	}
	if len(all) == 0 {
		return iam.SnapshotInfo{}, fmt.Errorf("latest snapshot: %w", iam.Errorf(iam.ENotFound, "no snapshot in %s", Bucket))
	}
	return all[0], nil
}

// Open streams the snapshot called name. Reading it to the end verifies
// the object's SHA-256 (a mismatch is an error at EOF). Close it. Errors:
// not_found when there is no such snapshot.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := s.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("open snapshot %s: %w", name, iam.Errorf(iam.ENotFound, "no snapshot %s", name))
	} else if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", name, err)
	}
	return r, nil
}

// fullReader fills every buffer it is given (short only at the end), so
// that an Object Store Put cuts full chunks from a reader that returns
// little at a time, such as a pipe.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
