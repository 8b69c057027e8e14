package replica_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iam-project/iam/eventlog/eventlogtest"
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

// compactsNoneFor fails the test if s runs a compaction beyond its first
// before within d: Pebble starts one as soon as a flush leaves level 0
// past its threshold, were it allowed to.
func compactsNoneFor(t *testing.T, s *replica.Store, before int64, d time.Duration, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if l0, c := replica.StoreLevels(s); c > before {
			t.Fatalf("%s: %d compactions, %d tables in level 0; want none", what, c-before, l0)
		}
	}
}

// compacted waits until s has run a compaction beyond before and brought
// its level 0 under Pebble's threshold (4 tables), which ends them.
func compacted(t *testing.T, s *replica.Store, before int64, what string) {
	t.Helper()
	eventlogtest.Eventually(t, 30*time.Second, what, func() bool {
		l0, c := replica.StoreLevels(s)
		return c > before && l0 < 4
	})
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
	compactsNoneFor(t, s, 0, time.Second, "held, 8 tables in level 0")
	if l0, _ := replica.StoreLevels(s); l0 != 8 {
		t.Fatalf("held: %d tables in level 0, want 8", l0)
	}

	replica.ReleaseCompactions(s)
	compacted(t, s, 0, "the 8 tables compacted once released")
	_, before := replica.StoreLevels(s)

	replica.HoldCompactions(s)
	flushOverlapping(t, s, 2, replica.MaxHeldFlushes-1)
	compactsNoneFor(t, s, before, time.Second, fmt.Sprintf("held for %d flushes", replica.MaxHeldFlushes-1))
	flushOverlapping(t, s, 3, 2)
	compacted(t, s, before, fmt.Sprintf("the tables compacted once a hold passed %d flushes", replica.MaxHeldFlushes))
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
	eventlogtest.Eventually(t, 10*time.Second, "compactions let run after the last batch of a catch-up", func() bool {
		return !replica.CompactionsHeld(quiet)
	})
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
	eventlogtest.Eventually(t, 10*time.Second, "the hold ended after its third flush", func() bool {
		return !replica.StoreHoldsCompactions(s)
	})
}
