package replica

// Snapshots and digests of the read model.
//
// A snapshot is the read model's rows at one log position, read from a
// Pebble snapshot (so rows and position are consistent without stopping
// anything), as one stream:
//
//	"IAMSNAP\n"
//	uvarint length, then the header as JSON (SnapshotHeader)
//	the body, compressed as the header says:
//	    for every row in key order: uvarint len(key), key, uvarint len(value), value
//	    uvarint 0 (no key is empty: the end)
//
// The header carries the position (sequence and MsgID), the row count and
// the digest, so a reader verifies all three before it commits anything. A
// new region loads one into its empty read model (LoadSnapshot) and follows
// the log from the position after it: the projector's MsgID check then
// proves the snapshot belongs to that log.
//
// A digest is Store.Digest's SHA-256 over every row and the applied
// sequence, labelled with the exact position it was taken at; DigestAt
// takes one at a given token.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"

	iam "github.com/iam-project/iam"
)

// Snapshot format.
const (
	// SnapshotVersion is the format written; a reader refuses any other.
	SnapshotVersion = 1
	snapshotMagic   = "IAMSNAP\n"
	// maxSnapshotHeader bounds the JSON header a reader accepts.
	maxSnapshotHeader = 64 << 10

	// CompressionZstd (the default) and CompressionNone are the body
	// encodings.
	CompressionZstd = "zstd"
	CompressionNone = "none"
)

// Errors of snapshots.
var (
	// ErrSnapshotCorrupt is wrapped by every error about a snapshot that is
	// not what its header says: bad magic or version, truncated, keys out
	// of order, or a row count or digest that does not match. Fetching the
	// same snapshot again cannot help; an older one or a replay can.
	ErrSnapshotCorrupt = errors.New("corrupt read-model snapshot")
	// ErrNotEmpty: a snapshot is loaded only into an empty read model.
	ErrNotEmpty = errors.New("read model is not empty")
)

// Digest identifies the state of a read model at one position: SHA256 is
// computed as by Store.Digest, over every row in key order and the applied
// sequence. Two read models with equal digests at the same Seq hold the
// same state.
type Digest struct {
	Seq    uint64 `json:"seq"`
	MsgID  string `json:"msgId"`
	Rows   uint64 `json:"rows"`
	SHA256 string `json:"sha256"`
}

// SnapshotHeader opens a snapshot stream.
type SnapshotHeader struct {
	Version int `json:"version"`
	Digest
	Compression string    `json:"compression"`
	Created     time.Time `json:"created"`
}

// rowHasher computes a Digest as rows go by.
type rowHasher struct {
	h    hash.Hash
	n    [8]byte
	rows uint64
}

func newRowHasher() *rowHasher { return &rowHasher{h: sha256.New()} }

func (r *rowHasher) add(k, v []byte) {
	binary.BigEndian.PutUint64(r.n[:], uint64(len(k)))
	r.h.Write(r.n[:])
	r.h.Write(k)
	binary.BigEndian.PutUint64(r.n[:], uint64(len(v)))
	r.h.Write(r.n[:])
	r.h.Write(v)
	r.rows++
}

func (r *rowHasher) digest(pos Position) Digest {
	binary.BigEndian.PutUint64(r.n[:], pos.Seq)
	r.h.Write(r.n[:])
	return Digest{Seq: pos.Seq, MsgID: pos.MsgID, Rows: r.rows, SHA256: hex.EncodeToString(r.h.Sum(nil))}
}

// reader is what both *pebble.DB and *pebble.Snapshot offer.
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func positionOf(r reader) (Position, error) {
	v, closer, err := r.Get(keyApplied)
	if errors.Is(err, pebble.ErrNotFound) {
		return Position{}, nil
	} else if err != nil {
		return Position{}, fmt.Errorf("read position: %w", err)
	}
	defer closer.Close()
	return decodePosition(v)
}

// scanRows calls fn for every row of r in key order.
func scanRows(r reader, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{UpperBound: metaPrefix})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return fmt.Errorf("scan: %w", err)
	}
	return it.Close()
}

func digestOf(r reader) (Digest, error) {
	pos, err := positionOf(r)
	if err != nil {
		return Digest{}, err
	}
	h := newRowHasher()
	if err := scanRows(r, func(k, v []byte) error { h.add(k, v); return nil }); err != nil {
		return Digest{}, err
	}
	return h.digest(pos), nil
}

// Snapshot is a consistent, point-in-time view of a Store. It pins the
// Pebble state it reads (space is reclaimed only after Close), so close it
// soon. It is safe for concurrent use; Close once, after every other call
// returned.
type Snapshot struct {
	snap   *pebble.Snapshot
	digest Digest
}

// Snapshot takes a snapshot of the read model as it is now and computes its
// digest (one pass over the rows). It costs no pause: commits go on.
func (s *Store) Snapshot() (*Snapshot, error) {
	snap := s.db.NewSnapshot()
	d, err := digestOf(snap)
	if err != nil {
		snap.Close()
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Snapshot{snap: snap, digest: d}, nil
}

// Digest returns the digest of the snapshot's state.
func (sn *Snapshot) Digest() Digest { return sn.digest }

// Close releases the snapshot.
func (sn *Snapshot) Close() error { return sn.snap.Close() }

// SnapshotOptions tune Snapshot.Write.
type SnapshotOptions struct {
	// Compression is CompressionZstd (default) or CompressionNone.
	Compression string
	// Now stamps the header. Default time.Now.
	Now func() time.Time
}

// Write writes the snapshot as a stream (see the package's snapshot
// format) and returns the header it wrote and the bytes written.
func (sn *Snapshot) Write(w io.Writer, o SnapshotOptions) (SnapshotHeader, int64, error) {
	if o.Compression == "" {
		o.Compression = CompressionZstd
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := SnapshotHeader{Version: SnapshotVersion, Digest: sn.digest, Compression: o.Compression, Created: o.Now().UTC()}
	cw := &countingWriter{w: w}
	head, err := json.Marshal(h)
	if err != nil {
		return h, 0, err
	}
	var pre []byte
	pre = append(pre, snapshotMagic...)
	pre = binary.AppendUvarint(pre, uint64(len(head)))
	pre = append(pre, head...)
	if _, err := cw.Write(pre); err != nil {
		return h, cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	var body io.Writer = cw
	var enc *zstd.Encoder
	switch o.Compression {
	case CompressionNone:
	case CompressionZstd:
		enc, err = zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			return h, cw.n, err
		}
		body = enc
	default:
		return h, 0, fmt.Errorf("write snapshot: compression %q is not one of %s, %s", o.Compression, CompressionZstd, CompressionNone)
	}
	bw := bufio.NewWriterSize(body, 256<<10)
	var n [2 * binary.MaxVarintLen64]byte
	rows := uint64(0)
	err = scanRows(sn.snap, func(k, v []byte) error {
		b := binary.AppendUvarint(n[:0], uint64(len(k)))
		bw.Write(b)
		bw.Write(k)
		b = binary.AppendUvarint(n[:0], uint64(len(v)))
		bw.Write(b)
		_, err := bw.Write(v)
		rows++
		return err
	})
	if err == nil && rows != sn.digest.Rows {
		err = fmt.Errorf("snapshot changed under its reader: %d rows, digest counted %d", rows, sn.digest.Rows)
	}
	if err == nil {
		bw.Write(binary.AppendUvarint(n[:0], 0))
		err = bw.Flush()
	}
	if enc != nil {
		if cerr := enc.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return h, cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	return h, cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadSnapshotHeader reads the header of a snapshot stream. It returns the
// header and the reader positioned at the body; errors wrap
// ErrSnapshotCorrupt for anything but a read failure.
func ReadSnapshotHeader(r io.Reader) (SnapshotHeader, *bufio.Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	var h SnapshotHeader
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return h, nil, fmt.Errorf("%w: magic: %w", ErrSnapshotCorrupt, err)
	}
	if string(magic) != snapshotMagic {
		return h, nil, fmt.Errorf("%w: not a snapshot (magic %q)", ErrSnapshotCorrupt, magic)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > maxSnapshotHeader {
		return h, nil, fmt.Errorf("%w: header length %d: %v", ErrSnapshotCorrupt, n, err)
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(br, head); err != nil {
		return h, nil, fmt.Errorf("%w: header: %w", ErrSnapshotCorrupt, err)
	}
	if err := json.Unmarshal(head, &h); err != nil {
		return h, nil, fmt.Errorf("%w: header: %w", ErrSnapshotCorrupt, err)
	}
	if h.Version != SnapshotVersion {
		return h, nil, fmt.Errorf("%w: version %d not supported (want %d)", ErrSnapshotCorrupt, h.Version, SnapshotVersion)
	}
	if h.Seq == 0 {
		return h, nil, fmt.Errorf("%w: position 0", ErrSnapshotCorrupt)
	}
	return h, br, nil
}

// Ways of loading a snapshot into Pebble (LoadOptions.Method).
const (
	// LoadIngest writes the rows and the position into sstables beside
	// the read model and ingests them in one atomic step: a crash leaves
	// the read model empty or loaded, never half.
	LoadIngest = "ingest"
	// LoadBatch commits the rows in large batches, then the position. A
	// crash part way leaves rows without a position, which Open would take
	// for an empty replica's: for comparison in benchmarks only.
	LoadBatch = "batch"
)

// LoadOptions configure LoadSnapshot.
type LoadOptions struct {
	// Store opens the read model (filesystem, cache).
	Store StoreOptions
	// Method is LoadIngest (default) or LoadBatch.
	Method string
	// TableSize is the size at which an ingested sstable is cut. Default
	// 128 MiB.
	TableSize uint64
}

// LoadSnapshot loads the snapshot read from r into the read model in dir,
// which must be empty (it is created when missing), and leaves it at the
// snapshot's position: Open then loads the index, and a projector goes on
// from the entry after it. Nothing is committed unless the stream's rows,
// row count and digest match its header. Replica.LoadSnapshot does the
// same for an open replica and builds its index on the way.
//
// Errors: ErrNotEmpty when dir holds a read model with rows or a position;
// errors wrapping ErrSnapshotCorrupt for a bad stream; others from Pebble
// or r.
func LoadSnapshot(ctx context.Context, dir string, r io.Reader, o LoadOptions) (SnapshotHeader, error) {
	s, err := OpenStore(dir, o.Store)
	if err != nil {
		return SnapshotHeader{}, err
	}
	defer s.Close()
	h, err := s.load(ctx, dir, r, o, nil)
	if err != nil {
		return h, err
	}
	return h, s.db.Flush()
}

// LoadSnapshot loads the snapshot read from rd into r, which must be empty
// and not yet fed (start its projector after this returns), building the
// index from the rows as they stream in, beside writing them to Pebble: a
// joining region is then ready without the scan Open does. On success r
// stands at the snapshot's position. Errors as the LoadSnapshot function;
// after an error r is still empty.
func (r *Replica) LoadSnapshot(ctx context.Context, rd io.Reader, o LoadOptions) (SnapshotHeader, error) {
	if r.Applied() != 0 {
		return SnapshotHeader{}, fmt.Errorf("load snapshot into %s: %w: at position %d", r.cfg.Region, ErrNotEmpty, r.Applied())
	}
	st := iam.NewState()
	if r.cfg.Limits != nil {
		st.Limits = *r.cfg.Limits
	}
	o.Store.FS = r.cfg.FS
	h, err := r.store.load(ctx, r.cfg.Dir, rd, o, st)
	if err != nil {
		return h, fmt.Errorf("load snapshot into %s: %w", r.cfg.Region, err)
	}
	pos := Position{Seq: h.Seq, MsgID: h.MsgID}
	st.SetSeq(pos.Seq)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state, r.pos = st, pos
	close(r.advanced)
	r.advanced = make(chan struct{})
	return h, nil
}

// load reads a snapshot into the empty store s (in dir), loading its rows
// into st as well when st is not nil.
func (s *Store) load(ctx context.Context, dir string, r io.Reader, o LoadOptions, st *iam.State) (SnapshotHeader, error) {
	if o.Method == "" {
		o.Method = LoadIngest
	}
	if o.TableSize == 0 {
		o.TableSize = 128 << 20
	}
	h, br, err := ReadSnapshotHeader(r)
	if err != nil {
		return h, err
	}
	body := br
	switch h.Compression {
	case CompressionNone:
	case CompressionZstd:
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderLowmem(false))
		if err != nil {
			return h, fmt.Errorf("%w: %w", ErrSnapshotCorrupt, err)
		}
		defer dec.Close()
		body = bufio.NewReaderSize(dec, 256<<10)
	default:
		return h, fmt.Errorf("%w: compression %q", ErrSnapshotCorrupt, h.Compression)
	}
	if err := s.requireEmpty(); err != nil {
		return h, err
	}
	rows := &rowReader{r: body, hash: newRowHasher()}
	var index *indexLoader
	if st != nil {
		index = newIndexLoader(st)
		rows.index = index
		defer index.stop()
	}
	pos := Position{Seq: h.Seq, MsgID: h.MsgID}
	switch o.Method {
	case LoadIngest:
		err = s.ingest(ctx, dir, o, rows, h, pos)
	case LoadBatch:
		err = s.loadBatches(ctx, rows, h, pos)
	default:
		err = fmt.Errorf("method %q is not one of %s, %s", o.Method, LoadIngest, LoadBatch)
	}
	if err != nil {
		return h, fmt.Errorf("load snapshot at %d: %w", h.Seq, err)
	}
	return h, nil
}

// indexLoader loads rows into a State on its own goroutine, so that the
// index is built while the stream is decoded and written to Pebble.
type indexLoader struct {
	st    *iam.State
	cur   *rowBatch
	todo  chan *rowBatch
	free  chan *rowBatch
	done  chan struct{}
	err   error // set by the loader goroutine before done closes
	ended bool
}

// rowBatch holds rows for the loader: keys, and values in one arena.
type rowBatch struct {
	keys  []string
	ends  []int // end of each value in arena
	arena []byte
}

const indexBatchRows = 4096

func newIndexLoader(st *iam.State) *indexLoader {
	l := &indexLoader{st: st, todo: make(chan *rowBatch, 4), free: make(chan *rowBatch, 6), done: make(chan struct{})}
	for range cap(l.free) {
		l.free <- &rowBatch{keys: make([]string, 0, indexBatchRows), ends: make([]int, 0, indexBatchRows)}
	}
	go l.run()
	return l
}

func (l *indexLoader) run() {
	defer close(l.done)
	for b := range l.todo {
		if l.err == nil {
			start := 0
			for i, k := range b.keys {
				if err := LoadRow(l.st, k, b.arena[start:b.ends[i]]); err != nil {
					l.err = fmt.Errorf("%w: row %q does not load: %w", ErrSnapshotCorrupt, k, err)
					break
				}
				start = b.ends[i]
			}
		}
		b.keys, b.ends, b.arena = b.keys[:0], b.ends[:0], b.arena[:0]
		l.free <- b
	}
}

// add queues a row (v is copied).
func (l *indexLoader) add(k []byte, v []byte) {
	if l.cur == nil {
		l.cur = <-l.free
	}
	b := l.cur
	b.keys = append(b.keys, string(k))
	b.arena = append(b.arena, v...)
	b.ends = append(b.ends, len(b.arena))
	if len(b.keys) == indexBatchRows {
		l.todo <- b
		l.cur = nil
	}
}

// finish waits until every queued row is loaded and returns the first
// error.
func (l *indexLoader) finish() error {
	if l.cur != nil && len(l.cur.keys) > 0 {
		l.todo <- l.cur
		l.cur = nil
	}
	l.stop()
	return l.err
}

// stop ends the loader goroutine and waits for it.
func (l *indexLoader) stop() {
	if !l.ended {
		l.ended = true
		close(l.todo)
	}
	<-l.done
}

// requireEmpty fails with ErrNotEmpty unless the store has no position and
// no row.
func (s *Store) requireEmpty() error {
	pos, err := s.Position()
	if err != nil {
		return err
	}
	if pos.Seq != 0 {
		return fmt.Errorf("%w: at position %d", ErrNotEmpty, pos.Seq)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return err
	}
	if found {
		return fmt.Errorf("%w: it holds rows", ErrNotEmpty)
	}
	return nil
}

// rowReader decodes the body's rows, checking their order and hashing them.
type rowReader struct {
	r     *bufio.Reader
	hash  *rowHasher
	index *indexLoader // if set, rows are loaded into an index too
	key   []byte       // the last key, to check the order
	keys  [2][]byte    // buffers of key and the one before
	flip  bool
	val   []byte
	done  bool
}

// next returns the next row (valid until the following call), or ok false
// at the end marker.
func (rr *rowReader) next() (k, v []byte, ok bool, err error) {
	if rr.done {
		return nil, nil, false, nil
	}
	kl, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: row %d: %w", ErrSnapshotCorrupt, rr.hash.rows+1, unexpectedEOF(err))
	}
	if kl == 0 {
		rr.done = true
		return nil, nil, false, nil
	}
	if kl > 1<<20 {
		return nil, nil, false, fmt.Errorf("%w: row %d: key of %d bytes", ErrSnapshotCorrupt, rr.hash.rows+1, kl)
	}
	// Two key buffers in turn: the previous key stays valid for the order
	// check (the sstable writer and the batch copy what they keep).
	prev := rr.key
	rr.flip = !rr.flip
	buf := &rr.keys[0]
	if rr.flip {
		buf = &rr.keys[1]
	}
	if uint64(cap(*buf)) < kl {
		*buf = make([]byte, kl, max(kl, 256))
	}
	k = (*buf)[:kl]
	if _, err := io.ReadFull(rr.r, k); err != nil {
		return nil, nil, false, fmt.Errorf("%w: row %d: %w", ErrSnapshotCorrupt, rr.hash.rows+1, unexpectedEOF(err))
	}
	if k[0] == metaPrefix[0] || (prev != nil && bytes.Compare(prev, k) >= 0) {
		return nil, nil, false, fmt.Errorf("%w: row %d: key %q out of order or reserved", ErrSnapshotCorrupt, rr.hash.rows+1, k)
	}
	vl, err := binary.ReadUvarint(rr.r)
	if err != nil || vl > 64<<20 {
		return nil, nil, false, fmt.Errorf("%w: row %d: value length %d: %v", ErrSnapshotCorrupt, rr.hash.rows+1, vl, unexpectedEOF(err))
	}
	if uint64(cap(rr.val)) < vl {
		rr.val = make([]byte, vl)
	}
	v = rr.val[:vl]
	if _, err := io.ReadFull(rr.r, v); err != nil {
		return nil, nil, false, fmt.Errorf("%w: row %d: %w", ErrSnapshotCorrupt, rr.hash.rows+1, unexpectedEOF(err))
	}
	rr.key = k
	rr.hash.add(k, v)
	if rr.index != nil {
		rr.index.add(k, v)
	}
	return k, v, true, nil
}

// verify checks, after the end marker, that the rows are the header's.
func (rr *rowReader) verify(h SnapshotHeader, pos Position) error {
	if !rr.done {
		return fmt.Errorf("%w: no end marker", ErrSnapshotCorrupt)
	}
	d := rr.hash.digest(pos)
	if d.Rows != h.Rows {
		return fmt.Errorf("%w: %d rows, header says %d", ErrSnapshotCorrupt, d.Rows, h.Rows)
	}
	if d.SHA256 != h.SHA256 {
		return fmt.Errorf("%w: digest %s, header says %s", ErrSnapshotCorrupt, d.SHA256, h.SHA256)
	}
	if rr.index != nil {
		return rr.index.finish()
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ingest writes the rows into sstables of at most o.TableSize, the
// position into the last, and ingests them together.
func (s *Store) ingest(ctx context.Context, dir string, o LoadOptions, rows *rowReader, h SnapshotHeader, pos Position) error {
	fs := o.Store.FS
	if fs == nil {
		fs = vfs.Default
	}
	tmp := filepath.Clean(dir) + ".loading"
	if err := fs.RemoveAll(tmp); err != nil {
		return err
	}
	if err := fs.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	defer fs.RemoveAll(tmp)
	opts := &pebble.Options{}
	opts.EnsureDefaults()
	wopts := opts.MakeWriterOptions(6, s.db.TableFormat())
	var paths []string
	var w *sstable.Writer
	open := func() error {
		path := filepath.Join(tmp, strconv.Itoa(len(paths))+".sst")
		f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		paths = append(paths, path)
		w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), wopts)
		return nil
	}
	closeTable := func() error {
		if w == nil {
			return nil
		}
		err := w.Close()
		w = nil
		return err
	}
	defer closeTable()
	if err := open(); err != nil {
		return err
	}
	for i := 0; ; i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		k, v, ok, err := rows.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if w.Raw().EstimatedSize() >= o.TableSize {
			if err := closeTable(); err != nil {
				return err
			}
			if err := open(); err != nil {
				return err
			}
		}
		if err := w.Set(k, v); err != nil {
			return err
		}
	}
	if err := rows.verify(h, pos); err != nil {
		return err
	}
	if err := w.Set(keyApplied, encodePosition(pos)); err != nil {
		return err
	}
	if err := closeTable(); err != nil {
		return err
	}
	return s.db.Ingest(ctx, paths)
}

// loadBatches commits the rows in batches of about 32 MiB, then the
// position. A bad stream deletes what was committed.
func (s *Store) loadBatches(ctx context.Context, rows *rowReader, h SnapshotHeader, pos Position) (err error) {
	defer func() {
		if err != nil {
			_ = s.db.DeleteRange([]byte{0}, metaPrefix, pebble.NoSync)
		}
	}()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	for {
		k, v, ok, err := rows.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() >= 32<<20 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = s.db.NewBatch()
		}
	}
	if err := rows.verify(h, pos); err != nil {
		return err
	}
	if err := b.Set(keyApplied, encodePosition(pos), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// Empty reports whether the read model in dir has neither rows nor a
// position (a directory that does not exist is empty). It opens and closes
// the store: call it before Open, not while a Replica has dir open.
func Empty(dir string, o StoreOptions) (bool, error) {
	s, err := OpenStore(dir, o)
	if err != nil {
		return false, err
	}
	defer s.Close()
	err = s.requireEmpty()
	if errors.Is(err, ErrNotEmpty) {
		return false, nil
	}
	return err == nil, err
}

// Digests at a given token.

// Gate is the projector's Sink for a Replica (it passes every call on)
// that can hold the replica exactly at a position for as long as it takes
// to pin a Pebble snapshot there: how DigestAt answers for a token the
// replica has not reached yet. It splits a batch at such a position; the
// digest itself is computed on the snapshot, off the projector's path.
//
// NewGate registers the gate for its replica, so that DigestAt finds it;
// Close unregisters it. It is safe for concurrent use; ApplyEntries is for
// the projector's goroutine.
type Gate struct {
	rep *Replica

	mu      sync.Mutex // held while a segment is applied
	stops   map[uint64][]chan *pebble.Snapshot
	entries uint64
	recent  []Digest // last digests taken, newest last
}

// maxRecentDigests bounds the digests a Gate remembers.
const maxRecentDigests = 16

var gates sync.Map // *Replica → *Gate

// NewGate returns the Gate of rep and registers it.
func NewGate(rep *Replica) *Gate {
	g := &Gate{rep: rep, stops: map[uint64][]chan *pebble.Snapshot{}}
	gates.Store(rep, g)
	return g
}

// Close unregisters the gate; waiting DigestAt calls end with
// replica_behind when their wait ends.
func (g *Gate) Close() { gates.CompareAndDelete(g.rep, g) }

// Replica returns the gated replica.
func (g *Gate) Replica() *Replica { return g.rep }

// Applied implements projector.Sink.
func (g *Gate) Applied() uint64 { return g.rep.Applied() }

// AppliedMsgID implements projector.Sink.
func (g *Gate) AppliedMsgID() string { return g.rep.AppliedMsgID() }

// Entries returns how many log entries were applied through the gate: a
// replica that joined from a snapshot applied only the tail after it.
func (g *Gate) Entries() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entries
}

// ApplyEntries implements projector.Sink: it applies entries, stopping
// after each position a DigestAt waits for to pin a snapshot there.
func (g *Gate) ApplyEntries(entries []iam.LogEntry) error {
	for len(entries) > 0 {
		g.mu.Lock()
		n := len(entries)
		first := entries[0].Seq
		for s := range g.stops {
			if s >= first && s-first+1 < uint64(n) {
				n = int(s - first + 1)
			}
		}
		err := g.rep.ApplyEntries(entries[:n])
		if err == nil {
			g.entries += uint64(n)
			g.releaseLocked(entries[n-1].Seq)
		}
		g.mu.Unlock()
		if err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// releaseLocked hands every waiter for seq a snapshot of the read model,
// which now stands exactly at seq.
func (g *Gate) releaseLocked(seq uint64) {
	ws, ok := g.stops[seq]
	if !ok {
		return
	}
	delete(g.stops, seq)
	for _, w := range ws {
		w <- g.rep.store.db.NewSnapshot() // buffered, one each
	}
}

// snapshotAt returns a Pebble snapshot of the read model at exactly seq,
// waiting up to wait for the replica to reach it.
func (g *Gate) snapshotAt(ctx context.Context, seq uint64, wait time.Duration) (*pebble.Snapshot, error) {
	g.mu.Lock()
	applied := g.rep.Applied()
	switch {
	case seq == 0 || seq == applied:
		// Nothing is being applied while g.mu is held.
		snap := g.rep.store.db.NewSnapshot()
		g.mu.Unlock()
		return snap, nil
	case seq < applied:
		g.mu.Unlock()
		return nil, iam.Errorf(iam.EConflict, "region %s has applied %d, past the requested %d; ask at a later token", g.rep.Region(), applied, seq)
	}
	ch := make(chan *pebble.Snapshot, 1)
	g.stops[seq] = append(g.stops[seq], ch)
	g.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	var cause error
	select {
	case snap := <-ch:
		return snap, nil
	case <-t.C:
		cause = fmt.Errorf("after waiting %s", wait)
	case <-ctx.Done():
		cause = ctx.Err()
	}
	g.mu.Lock()
	ws := g.stops[seq]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(g.stops, seq)
	} else {
		g.stops[seq] = ws
	}
	g.mu.Unlock()
	select {
	case snap := <-ch: // released just before we withdrew
		return snap, nil
	default:
	}
	return nil, iam.Errorf(iam.EReplicaBehind, "region %s has applied up to %d, behind the requested %d: %v", g.rep.Region(), g.rep.Applied(), seq, cause)
}

func (g *Gate) remember(d Digest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.recent {
		if r.Seq == d.Seq {
			return
		}
	}
	g.recent = append(g.recent, d)
	if len(g.recent) > maxRecentDigests {
		g.recent = g.recent[1:]
	}
}

func (g *Gate) recall(seq uint64) (Digest, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.recent {
		if r.Seq == seq {
			return r, true
		}
	}
	return Digest{}, false
}

// DigestAt returns the digest of rep's read model at exactly position seq
// (0: wherever it is now), waiting up to wait for the replica to reach a
// later seq. A replica whose projector feeds it through a Gate is held at
// seq while a snapshot is pinned (microseconds); the digest is computed
// from the snapshot by the caller (a full pass over the rows). Without a
// Gate, a seq ahead is answered only if no other entry was applied between
// reaching it and pinning the snapshot.
//
// Errors: replica_behind when seq is not reached in time; conflict when
// the replica has already passed seq (and its digest there is not among
// the last few taken): ask again at a later token.
func DigestAt(ctx context.Context, rep *Replica, seq uint64, wait time.Duration) (Digest, error) {
	g, _ := gates.Load(rep)
	gate, _ := g.(*Gate)
	if gate != nil && seq != 0 {
		if d, ok := gate.recall(seq); ok {
			return d, nil
		}
	}
	var snap *pebble.Snapshot
	var err error
	if gate != nil {
		snap, err = gate.snapshotAt(ctx, seq, wait)
	} else {
		if err = rep.WaitFor(ctx, seq, wait); err == nil {
			snap = rep.store.db.NewSnapshot()
		}
	}
	if err != nil {
		return Digest{}, err
	}
	defer snap.Close()
	d, err := digestOf(snap)
	if err != nil {
		return Digest{}, fmt.Errorf("digest of %s: %w", rep.Region(), err)
	}
	if seq != 0 && d.Seq != seq {
		return Digest{}, iam.Errorf(iam.EConflict, "region %s moved on to %d before a digest at %d was taken; ask at a later token", rep.Region(), d.Seq, seq)
	}
	if gate != nil {
		gate.remember(d)
	}
	return d, nil
}
