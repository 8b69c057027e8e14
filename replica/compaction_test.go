package replica_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iam-project/iam/replica"
)

// flushOverlapping commits n batches of rows spread over the whole key
// space, as a replay's are, and flushes each into a level 0 table of its
// own that overlaps all the others.
func flushOverlapping(t *testing.T, s *replica.Store, round, n int) {
	t.Helper()
	for i := range n {
		var rows []replica.RowChange
		for k := range 64 {
			rows = append(rows, replica.RowChange{Key: fmt.Appendf(nil, "2r\x00k%03d-%d-%d", k, round, i), Value: []byte("{}")})
		}
		if err := s.Commit(rows, replica.Position{Seq: uint64(round*1000 + i + 1)}); err != nil {
			t.Fatal(err)
		}
		if err := replica.FlushStore(s); err != nil {
			t.Fatal(err)
		}
	}
}

// awaitLevels polls s until ok holds of its level 0 and its compactions,
// for at most wait; it returns the last figures and whether ok held.
func awaitLevels(s *replica.Store, wait time.Duration, ok func(l0, compactions int64) bool) (int64, int64, bool) {
	deadline := time.Now().Add(wait)
	for {
		l0, c := replica.StoreLevels(s)
		if ok(l0, c) || time.Now().After(deadline) {
			return l0, c, ok(l0, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCompactionGate: a store whose compactions are held runs none while
// tables pile up in level 0 past Pebble's threshold (4), compacts them once
// released, and runs them again by itself once a hold has let level 0 grow
// MaxHeldFlushes sublevels deep, without a write stalling on the way.
func TestCompactionGate(t *testing.T) {
	s, err := replica.OpenStore(t.TempDir(), replica.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	replica.HoldCompactions(s)
	flushOverlapping(t, s, 1, 8)
	// Time for a compaction to start, were one allowed: Pebble starts one
	// as soon as a flush leaves level 0 past its threshold.
	if l0, c, ran := awaitLevels(s, time.Second, func(_, c int64) bool { return c > 0 }); ran || l0 < 8 {
		t.Fatalf("held: %d tables in level 0 and %d compactions; want 8 and none", l0, c)
	}

	replica.ReleaseCompactions(s)
	if l0, c, ok := awaitLevels(s, 30*time.Second, func(l0, c int64) bool { return c > 0 && l0 == 0 }); !ok {
		t.Fatalf("released: %d tables in level 0 after %d compactions; want them compacted", l0, c)
	}
	_, before := replica.StoreLevels(s)

	replica.HoldCompactions(s)
	flushOverlapping(t, s, 2, replica.MaxHeldFlushes-1)
	if l0, c, ran := awaitLevels(s, time.Second, func(_, c int64) bool { return c > before }); ran {
		t.Fatalf("held for %d flushes: %d compactions, %d tables in level 0; want none yet", replica.MaxHeldFlushes-1, c-before, l0)
	}
	flushOverlapping(t, s, 3, 2)
	if l0, c, ok := awaitLevels(s, 30*time.Second, func(l0, c int64) bool { return c > before && l0 < 4 }); !ok {
		t.Fatalf("held past %d flushes: %d compactions, %d tables in level 0; want them compacted", replica.MaxHeldFlushes, c-before, l0)
	}
}

// TestReplica_CatchUpHoldsCompactions: a replica holds compactions back
// while the entries it applies are older than the catch-up lag, and lets
// them run at the first batch that finds it caught up; or, when no batch
// comes, once the persister sees the apply slow.
func TestReplica_CatchUpHoldsCompactions(t *testing.T) {
	var now atomic.Pointer[time.Time]
	setNow := func(at time.Time) { now.Store(&at) }
	setNow(baseTime.Add(time.Hour))
	r := openReplica(t, replica.Config{Now: func() time.Time { return *now.Load() }})
	log := smallLog(20)
	if err := r.ApplyEntries(log[:10]); err != nil {
		t.Fatal(err)
	}
	if !replica.CompactionsHeld(r) {
		t.Fatal("applying entries an hour old: compactions not held")
	}
	setNow(log[19].Time.Add(time.Second))
	if err := r.ApplyEntries(log[10:]); err != nil {
		t.Fatal(err)
	}
	if replica.CompactionsHeld(r) {
		t.Fatal("applying entries a second old: compactions still held")
	}

	// A catch-up that ends at a checkpoint, and then nothing.
	setNow(baseTime.Add(time.Hour))
	quiet := openReplica(t, replica.Config{Now: func() time.Time { return *now.Load() }, CheckpointEvery: 5})
	if err := quiet.ApplyEntries(log); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for replica.CompactionsHeld(quiet) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if replica.CompactionsHeld(quiet) {
		t.Fatal("10 s after the last batch of a catch-up: compactions still held")
	}
}

// TestCompactionGate_CountsTheLevelItFinds: a hold taken while level 0 is
// already deep (a catch-up that paused while compactions ran) lasts only
// the flushes left to MaxHeldFlushes, so that it can never stall its own
// writes; one taken at MaxHeldFlushes holds nothing.
func TestCompactionGate_CountsTheLevelItFinds(t *testing.T) {
	s, err := replica.OpenStore(t.TempDir(), replica.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	replica.HoldCompactionsAt(s, replica.MaxHeldFlushes)
	if replica.StoreHoldsCompactions(s) {
		t.Fatalf("a hold taken at %d sublevels holds", replica.MaxHeldFlushes)
	}
	replica.ReleaseCompactions(s)
	replica.HoldCompactionsAt(s, replica.MaxHeldFlushes-3)
	flushOverlapping(t, s, 1, 2)
	if !replica.StoreHoldsCompactions(s) {
		t.Fatalf("a hold taken at %d sublevels ended after 2 flushes", replica.MaxHeldFlushes-3)
	}
	flushOverlapping(t, s, 2, 1)
	// Pebble tells the gate of a flush just after Flush returns.
	deadline := time.Now().Add(10 * time.Second)
	for replica.StoreHoldsCompactions(s) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if replica.StoreHoldsCompactions(s) {
		t.Fatalf("a hold taken at %d sublevels still holds 10 s after 3 flushes", replica.MaxHeldFlushes-3)
	}
}
