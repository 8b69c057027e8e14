package replica

// Digests of the read model, and a digest at an exact token.
//
// A digest is Store.Digest's SHA-256 over every row and the applied
// sequence, labelled with the exact position it was taken at.
// Replica.DigestAt takes one at a given token: ApplyEntries stops at that
// position for as long as it takes to pin a Pebble snapshot there, and the
// digest is computed from the snapshot, off the projector's path.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"

	iam "github.com/iam-project/iam"
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

// digestOf computes the digest of the read model r, giving up with ctx's
// error when ctx ends (checked every digestCheckRows rows).
func digestOf(ctx context.Context, r reader) (Digest, error) {
	pos, err := positionOf(r)
	if err != nil {
		return Digest{}, err
	}
	h := newRowHasher()
	rows := 0
	if err := scanRows(r, func(k, v []byte) error {
		if rows++; rows%digestCheckRows == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h.add(k, v)
		return nil
	}); err != nil {
		return Digest{}, err
	}
	return h.digest(pos), nil
}

// digestCheckRows: a digest looks at its context once every so many rows,
// not at each.
const digestCheckRows = 4096

// maxRecentDigests bounds the digests a Replica remembers for DigestAt.
const maxRecentDigests = 16

// DigestAt returns the digest of the read model at exactly position seq
// (0: wherever it is now), waiting up to wait for the replica to reach a
// later seq. ApplyEntries holds the replica at seq while a Pebble snapshot
// is pinned there (microseconds), splitting a batch that runs past it; the
// digest is then computed from the snapshot by the caller (a full pass
// over the rows). The last few digests taken are remembered, so a token
// just passed is still answered. It is safe for concurrent use.
//
// Errors: replica_behind when seq is not reached in time; conflict when
// the replica has already passed seq (and its digest there is not among
// the last few taken): ask again at a later token.
func (r *Replica) DigestAt(ctx context.Context, seq uint64, wait time.Duration) (Digest, error) {
	if seq != 0 {
		if d, ok := r.recall(seq); ok {
			return d, nil
		}
	}
	snap, err := r.snapshotAt(ctx, seq, wait)
	if err != nil {
		return Digest{}, err
	}
	defer snap.Close()
	d, err := digestOf(ctx, snap)
	if err != nil {
		return Digest{}, fmt.Errorf("digest of %s: %w", r.cfg.Region, err)
	}
	if seq != 0 && d.Seq != seq {
		return Digest{}, iam.Errorf(iam.EConflict, "region %s moved on to %d before a digest at %d was taken; ask at a later token", r.cfg.Region, d.Seq, seq)
	}
	r.remember(d)
	return d, nil
}

// releaseLocked hands every DigestAt waiting for seq a snapshot of the read
// model, which now stands exactly at seq; r.applyMu is held.
func (r *Replica) releaseLocked(seq uint64) {
	ws, ok := r.stops[seq]
	if !ok {
		return
	}
	delete(r.stops, seq)
	for _, w := range ws {
		w <- r.store.db.NewSnapshot() // buffered, one each
	}
}

// snapshotAt returns a Pebble snapshot of the read model at exactly seq,
// waiting up to wait for the replica to reach it.
func (r *Replica) snapshotAt(ctx context.Context, seq uint64, wait time.Duration) (*pebble.Snapshot, error) {
	r.applyMu.Lock()
	// Pebble must hold what is applied: a bulk catch-up's rows are
	// written first.
	if err := r.finishBulkLocked(true); err != nil {
		r.applyMu.Unlock()
		return nil, err
	}
	applied := r.Applied()
	switch {
	case seq == 0 || seq == applied:
		// Nothing is being applied while r.applyMu is held.
		snap := r.store.db.NewSnapshot()
		r.applyMu.Unlock()
		return snap, nil
	case seq < applied:
		r.applyMu.Unlock()
		return nil, iam.Errorf(iam.EConflict, "region %s has applied %d, past the requested %d; ask at a later token", r.cfg.Region, applied, seq)
	}
	ch := make(chan *pebble.Snapshot, 1)
	if r.stops == nil {
		r.stops = map[uint64][]chan *pebble.Snapshot{}
	}
	r.stops[seq] = append(r.stops[seq], ch)
	r.applyMu.Unlock()
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
	r.applyMu.Lock()
	ws := r.stops[seq]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(r.stops, seq)
	} else {
		r.stops[seq] = ws
	}
	r.applyMu.Unlock()
	select {
	case snap := <-ch: // released just before we withdrew
		return snap, nil
	default:
	}
	return nil, iam.Errorf(iam.EReplicaBehind, "region %s has applied up to %d, behind the requested %d: %v", r.cfg.Region, r.Applied(), seq, cause)
}

func (r *Replica) remember(d Digest) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	for _, x := range r.recent {
		if x.Seq == d.Seq {
			return
		}
	}
	r.recent = append(r.recent, d)
	if len(r.recent) > maxRecentDigests {
		r.recent = r.recent[1:]
	}
}

func (r *Replica) recall(seq uint64) (Digest, bool) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	for _, x := range r.recent {
		if x.Seq == seq {
			return x, true
		}
	}
	return Digest{}, false
}
