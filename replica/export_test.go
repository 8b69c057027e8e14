package replica

// Test hooks: the least the black-box tests need.

import (
	"context"

	"github.com/cockroachdb/pebble/v2"
)

// LoadBatch is the loading method that commits the rows in batches, for
// comparison with LoadIngest (load.go).
const LoadBatch = loadBatch

// DigestsWaiting returns how many DigestAt calls wait for r to reach
// their position.
func DigestsWaiting(r *Replica) int {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	n := 0
	for _, ws := range r.stops {
		n += len(ws)
	}
	return n
}

// IndexedCheckpoints returns the positions of the checkpoints that hold
// an index (a snapshot of the state), ascending.
func IndexedCheckpoints(r *Replica) []uint64 {
	r.hist.mu.Lock()
	defer r.hist.mu.Unlock()
	var seqs []uint64
	for _, cp := range r.hist.cps {
		if cp.state != nil {
			seqs = append(seqs, cp.seq)
		}
	}
	return seqs
}

// WaitWarm waits until the background rebuild of the indexes of the
// checkpoints found on disk at Open (history_warm.go), if any, has ended.
func WaitWarm(r *Replica) {
	r.hist.mu.Lock()
	warmed := r.hist.warmed
	r.hist.mu.Unlock()
	if warmed != nil {
		<-warmed
	}
}

// PersistCheckpoints writes the files of the checkpoints that have none
// yet, until ctx ends, as Close does.
func PersistCheckpoints(ctx context.Context, r *Replica) error { return r.persistAll(ctx) }

// BuildDeferredIndexes builds the checkpoints' indexes a catch-up
// deferred, as the persister does once the apply slows.
func BuildDeferredIndexes(r *Replica) error { return r.buildDeferredIndexes(context.Background()) }

// KeptBuffers returns the capacities of the buffers apply keeps for its
// next batch: touched changes, row keys, rows.
func KeptBuffers(r *Replica) (touched, keys, rows int) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	return cap(r.touched), cap(r.rowKeys), cap(r.changes)
}

// CheckpointDir, CheckpointName and CheckpointSeq: where the checkpoint
// files of the read model in a directory are, and how they are named.
var (
	CheckpointDir  = checkpointDir
	CheckpointName = checkpointName
	CheckpointSeq  = checkpointSeq
)

// PebbleOptions are the Store's Pebble options, for BenchmarkRawPebble.
func PebbleOptions(cache *pebble.Cache) *pebble.Options { return pebbleOptions(cache, nil) }

// StopPersister stops r's background writer of checkpoint files, as Close
// does first, so that a test knows which files it writes itself.
func StopPersister(r *Replica) {
	r.hist.mu.Lock()
	stop := r.hist.stopPersist
	r.hist.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// MaxHeldFlushes is how deep a hold of compactions lets level 0 grow, in
// sublevels (one a flush).
const MaxHeldFlushes = maxHeldFlushes

// HoldCompactions and ReleaseCompactions hold s's compactions back and let
// them run, as a replica catching up does.
func HoldCompactions(s *Store)    { s.holdCompactions() }
func ReleaseCompactions(s *Store) { s.releaseCompactions() }

// HoldCompactionsAt holds s's compactions back as if its level 0 were
// depth sublevels deep.
func HoldCompactionsAt(s *Store, depth int) { s.gate.hold(func() int { return depth }) }

// CompactionsHeld says whether r's store holds compactions back;
// StoreHoldsCompactions whether s does.
func CompactionsHeld(r *Replica) bool { return StoreHoldsCompactions(r.store) }

func StoreHoldsCompactions(s *Store) bool {
	s.gate.mu.Lock()
	defer s.gate.mu.Unlock()
	return s.gate.holding()
}

// FlushStore flushes s's memtable into a level 0 table.
func FlushStore(s *Store) error { return s.db.Flush() }

// StoreLevels returns how many tables s's level 0 holds and how many
// compactions it ran.
func StoreLevels(s *Store) (l0Tables, compactions int64) {
	m := s.db.Metrics()
	return m.Levels[0].TablesCount, m.Compact.Count
}

// KeyOrderedRows is what a bulk catch-up writes (bulk.go).
var KeyOrderedRows = keyOrderedRows

// Bulk reports whether r is in a bulk catch-up.
func Bulk(r *Replica) bool {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	return r.bulk != nil
}

// GrowHeapFor readies the heap for an index of rows rows (hugeheap_linux.go).
var GrowHeapFor = growHeapFor
