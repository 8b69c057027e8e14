package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Rows are stored under their domain keys; the replica's own metadata sorts
// after every row so a scan of rows never meets it.
var (
	metaPrefix = []byte{0xff}
	keyApplied = []byte("\xffapplied")
)

// StoreOptions configure the Pebble read model.
type StoreOptions struct {
	// FS is the filesystem; nil is the OS. Tests pass vfs.NewMem() (with
	// CrashClone to simulate a crash).
	FS vfs.FS
	// CacheSize is Pebble's block cache in bytes; 0 means 64 MiB.
	CacheSize int64
}

// Store is the durable read model: rows plus the applied position. Writes
// are NoSync: the log is the source of truth, and rows and position always
// land together in one batch, so a crash loses at most a suffix that the
// projector applies again.
type Store struct {
	db   *pebble.DB
	gate *compactionGate // its compaction scheduler (compaction.go)
}

// Position is the last applied log entry.
type Position struct {
	Seq   uint64
	MsgID string
}

// OpenStore opens (or creates) the read model in dir.
func OpenStore(dir string, o StoreOptions) (*Store, error) {
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	opts := pebbleOptions(cache, o.FS)
	gate := newCompactionGate()
	opts.Experimental.CompactionScheduler = gate
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open read model %s: %w", dir, err)
	}
	return &Store{db: db, gate: gate}, nil
}

// holdCompactions holds the store's compactions back, and
// releaseCompactions lets them run again (compaction.go).
func (s *Store) holdCompactions() {
	s.gate.hold(func() int { return int(s.db.Metrics().Levels[0].Sublevels) })
}

func (s *Store) releaseCompactions() { s.gate.release() }

// pebbleOptions are the read model's Pebble options; BenchmarkRawPebble
// writes with them too, so that the ceiling a replay is measured against
// cannot drift from the Store.
func pebbleOptions(cache *pebble.Cache, fs vfs.FS) *pebble.Options {
	return &pebble.Options{Cache: cache, FS: fs, Logger: quietLogger{}, L0StopWritesThreshold: l0StopWrites}
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// storedRows estimates the rows of the read model from its sstables'
// properties, without reading a row: their entries, which count deletions
// and rows overwritten but not yet compacted away, and not what is only in
// the memtable. 0 when the tables do not say.
func (s *Store) storedRows() uint64 {
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		return 0
	}
	var n uint64
	for _, tables := range levels {
		for _, t := range tables {
			if t.Properties != nil {
				n += t.Properties.NumEntries
			}
		}
	}
	return n
}

// Position returns the stored applied position (zero when empty).
func (s *Store) Position() (Position, error) {
	v, closer, err := s.db.Get(keyApplied)
	if errors.Is(err, pebble.ErrNotFound) {
		return Position{}, nil
	} else if err != nil {
		return Position{}, fmt.Errorf("read position: %w", err)
	}
	defer closer.Close()
	return decodePosition(v)
}

func encodePosition(p Position) []byte {
	b := binary.BigEndian.AppendUint64(nil, p.Seq)
	return append(b, p.MsgID...)
}

func decodePosition(v []byte) (Position, error) {
	if len(v) < 8 {
		return Position{}, fmt.Errorf("corrupt position record (%d bytes)", len(v))
	}
	return Position{Seq: binary.BigEndian.Uint64(v), MsgID: string(v[8:])}, nil
}

// RowChange is a row to set, or to delete when Delete is true.
type RowChange struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// Commit writes changes and the new position in one atomic batch. A key
// may appear more than once; the last change of it wins.
func (s *Store) Commit(changes []RowChange, pos Position) error {
	// Size the batch up front and copy keys straight into it: a replay
	// writes a million rows, and growing the batch and converting each key
	// to a []byte first showed in its profile.
	size := 64
	for _, c := range changes {
		size += len(c.Key) + len(c.Value) + 16
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()
	for _, c := range changes {
		var op *pebble.DeferredBatchOp
		if c.Delete {
			op = b.DeleteDeferred(len(c.Key))
		} else {
			op = b.SetDeferred(len(c.Key), len(c.Value))
			copy(op.Value, c.Value)
		}
		copy(op.Key, c.Key)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("batch row: %w", err)
		}
	}
	if err := b.Set(keyApplied, encodePosition(pos), nil); err != nil {
		return fmt.Errorf("batch position: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit read model at %d: %w", pos.Seq, err)
	}
	return nil
}

// Scan calls fn for every row in key order.
func (s *Store) Scan(fn func(key string, value []byte) error) error {
	return scanRows(s.db, func(k, v []byte) error { return fn(string(k), v) })
}

// Digest is a SHA-256 over every row and the applied sequence: two read
// models with equal digests hold the same state at the same position.
func (s *Store) Digest() (string, uint64, error) {
	// Position and rows from one Pebble snapshot: commits going on meanwhile
	// cannot pair the rows of one position with another.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	d, err := digestOf(context.Background(), snap)
	if err != nil {
		return "", 0, err
	}
	return d.SHA256, d.Seq, nil
}

// Equal reports whether two stores hold the same rows (positions aside),
// and the first differing key if not. For tests and the digest tooling.
func (s *Store) Equal(o *Store) (bool, string, error) {
	var a, b []string
	var av, bv [][]byte
	collect := func(keys *[]string, vals *[][]byte) func(string, []byte) error {
		return func(k string, v []byte) error {
			*keys = append(*keys, k)
			*vals = append(*vals, bytes.Clone(v))
			return nil
		}
	}
	if err := s.Scan(collect(&a, &av)); err != nil {
		return false, "", err
	}
	if err := o.Scan(collect(&b, &bv)); err != nil {
		return false, "", err
	}
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return false, b[i], nil
		case i >= len(b):
			return false, a[i], nil
		case a[i] != b[i] || !bytes.Equal(av[i], bv[i]):
			return false, a[i], nil
		}
	}
	return true, "", nil
}

// quietLogger drops Pebble's informational lines (they would interleave with
// iamd's structured log) and keeps its errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...any) {
	slog.Error("pebble fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
