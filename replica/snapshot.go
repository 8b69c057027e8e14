package replica

// The snapshot format, and writing a snapshot of a Store.
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
// the digest (digest.go), so a reader verifies all three before it commits
// anything. A new region loads one into its empty read model (load.go) and
// follows the log from the position after it: the projector's MsgID check
// then proves the snapshot belongs to that log.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
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

// SnapshotHeader opens a snapshot stream.
type SnapshotHeader struct {
	Version int `json:"version"`
	Digest
	// Identities counts each realm's identity rows, for a loader to size
	// the realm's maps before the rows come (as Open does from its own
	// count). Only a hint, so outside the signature: a loader ignores it
	// when it claims more rows than the signed Rows.
	Identities  map[string]int `json:"identities,omitempty"`
	Compression string         `json:"compression"`
	Created     time.Time      `json:"created"`
	// Signature signs the position, row count and digest with the log's
	// signing key (SnapshotSigner): anyone can recompute a digest, only
	// the hub can sign it. Empty when written without a signer.
	Signature string `json:"signature,omitempty"`
}

// SnapshotSigner signs a snapshot header's position and digest
// (*logsign.Signer).
type SnapshotSigner interface {
	SignSnapshot(seq uint64, msgID string, rows uint64, sha256 string) string
}

// SnapshotVerifier checks a snapshot header's signature
// (*logsign.Verifier); an error means the snapshot is not to be trusted.
type SnapshotVerifier interface {
	VerifySnapshot(sig string, seq uint64, msgID string, rows uint64, sha256 string) error
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
	d, err := digestOf(context.Background(), snap)
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
	// Signer, if set, signs the header.
	Signer SnapshotSigner
}

// Write writes the snapshot as a stream (see the package's snapshot
// format) and returns the header it wrote and the bytes written.
func (sn *Snapshot) Write(w io.Writer, o SnapshotOptions) (SnapshotHeader, int64, error) {
	return sn.write(w, sn.snap, o)
}

// write writes the rows of src, which sn.digest describes.
func (sn *Snapshot) write(w io.Writer, src reader, o SnapshotOptions) (SnapshotHeader, int64, error) {
	if o.Compression == "" {
		o.Compression = CompressionZstd
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := SnapshotHeader{Version: SnapshotVersion, Digest: sn.digest, Compression: o.Compression, Created: o.Now().UTC()}
	ids, err := identityCounts(src)
	if err != nil {
		return h, 0, fmt.Errorf("write snapshot: %w", err)
	}
	h.Identities = ids
	if o.Signer != nil {
		h.Signature = o.Signer.SignSnapshot(h.Seq, h.MsgID, h.Rows, h.SHA256)
	}
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
	err = scanRows(src, func(k, v []byte) error {
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
