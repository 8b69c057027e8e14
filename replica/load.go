package replica

// Loading a snapshot into an empty read model.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"

	iam "github.com/iam-project/iam"
)

// Ways of loading a snapshot into Pebble (LoadOptions.Method).
const (
	// LoadIngest writes the rows and the position into sstables beside
	// the read model and ingests them in one atomic step: a crash leaves
	// the read model empty or loaded, never half.
	LoadIngest = "ingest"
	// loadBatch commits the rows in large batches, then the position. A
	// crash part way leaves rows without a position, which Open would take
	// for an empty replica's: for comparison in tests and benchmarks only
	// (export_test.go names it LoadBatch for them).
	loadBatch = "batch"
)

// defaultTableSize is where an ingested sstable is cut.
const defaultTableSize = 128 << 20

// LoadOptions configure LoadSnapshot.
type LoadOptions struct {
	// Store opens the read model (filesystem, cache).
	Store StoreOptions
	// Method is LoadIngest, the default and the only one outside tests.
	Method string
	// TableSize is the size at which an ingested sstable is cut. Default
	// 128 MiB.
	TableSize uint64
	// Verifier, if set, checks the header's signature before anything is
	// read further: an unsigned or forged snapshot fails with an error
	// wrapping ErrSnapshotCorrupt (so Join skips it). Replica.LoadSnapshot
	// defaults it to the replica's Config.SnapshotVerifier.
	Verifier SnapshotVerifier
}

// LoadSnapshot loads the snapshot read from r into the read model in dir,
// which must be empty (it is created when missing), and leaves it at the
// snapshot's position: Open then loads the index, and a projector goes on
// from the entry after it. Nothing is committed unless the stream's rows,
// row count and digest match its header (nor, with a Verifier, unless its
// signature holds). Replica.LoadSnapshot does the
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
	if o.Verifier == nil {
		o.Verifier = r.cfg.SnapshotVerifier
	}
	h, err := r.store.load(ctx, r.cfg.Dir, rd, o, st)
	if err != nil {
		return h, fmt.Errorf("load snapshot into %s: %w", r.cfg.Region, err)
	}
	pos := Position{Seq: h.Seq, MsgID: h.MsgID}
	st.SetSeq(pos.Seq)
	r.mu.Lock()
	r.state, r.pos = st, pos
	close(r.advanced)
	r.advanced = make(chan struct{})
	r.mu.Unlock()
	// The log before the snapshot may be long: past positions after it
	// start here rather than from the first entry.
	r.applyMu.Lock()
	r.historyFrom(pos.Seq)
	r.applyMu.Unlock()
	return h, nil
}

// load reads a snapshot into the empty store s (in dir), loading its rows
// into st as well when st is not nil.
func (s *Store) load(ctx context.Context, dir string, r io.Reader, o LoadOptions, st *iam.State) (SnapshotHeader, error) {
	if o.Method == "" {
		o.Method = LoadIngest
	}
	if o.TableSize == 0 {
		o.TableSize = defaultTableSize
	}
	h, br, err := ReadSnapshotHeader(r)
	if err != nil {
		return h, err
	}
	if o.Verifier != nil {
		if err := o.Verifier.VerifySnapshot(h.Signature, h.Seq, h.MsgID, h.Rows, h.SHA256); err != nil {
			return h, fmt.Errorf("%w: signature: %w", ErrSnapshotCorrupt, err)
		}
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
		growHeapFor(h.Rows)
		index = newIndexLoader(st)
		index.rows.identities = h.identityHint()
		rows.index = index
		defer index.stop()
	}
	pos := Position{Seq: h.Seq, MsgID: h.MsgID}
	switch o.Method {
	case LoadIngest:
		err = s.ingest(ctx, dir, o.Store.FS, o.TableSize, verifiedRows{rows, h, pos}, pos)
	case loadBatch:
		err = s.loadBatches(ctx, rows, h, pos)
	default:
		err = fmt.Errorf("method %q is not one of %s, %s", o.Method, LoadIngest, loadBatch)
	}
	if err != nil {
		return h, fmt.Errorf("load snapshot at %d: %w", h.Seq, err)
	}
	return h, nil
}

// identityHint returns the header's identity counts, or nil when they
// claim more rows than the snapshot has: the counts are not signed.
func (h SnapshotHeader) identityHint() map[string]int {
	left := h.Rows
	for _, n := range h.Identities {
		if n < 0 || uint64(n) > left {
			return nil
		}
		left -= uint64(n)
	}
	return h.Identities
}

// indexLoader loads rows into a State on its own goroutine, so that the
// index is built while the stream is decoded and written to Pebble.
type indexLoader struct {
	rows  *RowLoader
	cur   *rowBatch
	todo  chan *rowBatch
	free  chan *rowBatch
	done  chan struct{}
	err   error // set by the loader goroutine before done closes
	ended bool
}

// rowBatch holds rows for the loader: each row's key then value in one
// arena, and where each ends; identity rows decoded too.
type rowBatch struct {
	rows   []batchRow
	arena  []byte
	idents []decodedIdentity
}

type batchRow struct {
	keyEnd, valueEnd int // in arena
	ident            int // 1 + the index of its decoded value in idents; 0 for none
}

// A batch's buffers are made at these sizes when it is first used (a
// small read model uses one batch of six), and it is handed over before
// any would grow (only a row larger than indexBatchBytes grows its arena).
// Grown row by row, six batches' buffers came to 65 MB of the 518 MB an
// allocation profile counted in a load of the workload snapshot (820k
// rows), each new array on fresh pages in a new process.
const (
	indexBatchRows       = 4096
	indexBatchBytes      = 512 << 10
	indexBatchIdentities = 1024
)

func newIndexLoader(st *iam.State) *indexLoader {
	l := &indexLoader{rows: NewRowLoader(st), todo: make(chan *rowBatch, 4), free: make(chan *rowBatch, 6), done: make(chan struct{})}
	for range cap(l.free) {
		l.free <- new(rowBatch)
	}
	go l.run()
	return l
}

func (l *indexLoader) run() {
	defer close(l.done)
	for b := range l.todo {
		if l.err == nil {
			start := 0
			for _, row := range b.rows {
				k, v := b.arena[start:row.keyEnd], b.arena[row.keyEnd:row.valueEnd]
				var ident *decodedIdentity
				if row.ident > 0 {
					ident = &b.idents[row.ident-1]
				}
				if err := l.rows.load(k, v, ident); err != nil {
					l.err = err
					break
				}
				start = row.valueEnd
			}
		}
		b.rows, b.arena, b.idents = b.rows[:0], b.arena[:0], b.idents[:0]
		l.free <- b
	}
	if err := l.rows.Finish(); err != nil && l.err == nil {
		l.err = err
	}
}

// loadIndex loads every row of rd into st, decoding them into the index
// beside the scan (Open spent a sixth of a 10M-grant restart iterating
// Pebble before the index saw a row). identities, if known, sizes the
// realms' identity maps (RowLoader.identities).
func loadIndex(rd reader, st *iam.State, identities map[string]int) error {
	l := newIndexLoader(st)
	l.rows.identities = identities
	if err := scanRows(rd, func(k, v []byte) error { l.add(k, v); return nil }); err != nil {
		l.stop()
		return err
	}
	return l.finish()
}

// add queues a row (k and v are copied), decoding it if an identity's.
func (l *indexLoader) add(k []byte, v []byte) {
	if b := l.cur; b != nil && len(b.arena)+len(k)+len(v) > cap(b.arena) {
		l.handOver()
	}
	if l.cur == nil {
		l.cur = <-l.free
		if l.cur.rows == nil {
			l.cur.rows, l.cur.arena = make([]batchRow, 0, indexBatchRows), make([]byte, 0, indexBatchBytes)
			l.cur.idents = make([]decodedIdentity, 0, indexBatchIdentities)
		}
	}
	b := l.cur
	row := batchRow{}
	if isIdentityRow(k) {
		// Decoded in place: a decodedIdentity per row on the heap made
		// 2.7 GB of garbage at 10M grants.
		b.idents = append(b.idents, decodedIdentity{})
		decodeIdentity(v, &b.idents[len(b.idents)-1])
		row.ident = len(b.idents)
	}
	b.arena = append(b.arena, k...)
	row.keyEnd = len(b.arena)
	b.arena = append(b.arena, v...)
	row.valueEnd = len(b.arena)
	b.rows = append(b.rows, row)
	if len(b.rows) == cap(b.rows) || len(b.idents) == cap(b.idents) {
		l.handOver()
	}
}

// handOver queues the current batch for the loader goroutine.
func (l *indexLoader) handOver() {
	l.todo <- l.cur
	l.cur = nil
}

// finish waits until every queued row is loaded and returns the first
// error.
func (l *indexLoader) finish() error {
	if l.cur != nil && len(l.cur.rows) > 0 {
		l.handOver()
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
		if err := rr.index.finish(); err != nil {
			return fmt.Errorf("%w: %w", ErrSnapshotCorrupt, err)
		}
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// rowSource hands ingest its rows in key order; end is called after the
// last, before the position is written, to refuse what came.
type rowSource interface {
	next() (k, v []byte, ok bool, err error)
	end() error
}

// verifiedRows are a snapshot's rows, checked against its header at the end.
type verifiedRows struct {
	*rowReader
	h   SnapshotHeader
	pos Position
}

func (v verifiedRows) end() error { return v.verify(v.h, v.pos) }

// ingest writes the rows into sstables of at most tableSize (in a
// directory beside dir, on fs), the position into the last, and ingests
// them together: a crash leaves the store as it was or with all of them.
func (s *Store) ingest(ctx context.Context, dir string, fs vfs.FS, tableSize uint64, rows rowSource, pos Position) error {
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
		if w.Raw().EstimatedSize() >= tableSize {
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
	if err := rows.end(); err != nil {
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
