package iam_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// TestState_Snapshot: a snapshot taken at any step of a history holding
// every event type stays exactly the state at that step while its original
// goes on, a later snapshot included; a fork of it, taken on the same
// history, ends where the original ends; and neither's changes reach the
// snapshot. Any apply that changed a shared entity in place, rather than
// through the own* accessors (cow.go), fails here.
func TestState_Snapshot(t *testing.T) {
	evs := everyEvent()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(i int) iam.LogEntry {
		return iam.LogEntry{Seq: uint64(i + 1), Commits: []iam.Commit{{IdempotencyKey: fmt.Sprint("k", i), RequestHash: "h", At: at, Events: []iam.Event{evs[i]}}}}
	}
	replay := func(t *testing.T, s *iam.State, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := s.ApplyEntry(entry(i), nil); err != nil {
				t.Fatalf("apply %s: %v", evs[i].EventType(), err)
			}
		}
	}
	fresh := func(t *testing.T, n int) *iam.State {
		s := iam.NewState()
		s.TrackIdempotency = true
		replay(t, s, 0, n)
		return s
	}
	// Clone copies whole with generation 0 throughout: states compared so
	// differ only in what they hold.
	same := func(a, b *iam.State) bool { return reflect.DeepEqual(a.Clone(), b.Clone()) }
	for i := range len(evs) + 1 {
		for _, j := range []int{i, min(i+5, len(evs))} {
			t.Run(fmt.Sprintf("at %d then %d", i, j), func(t *testing.T) {
				s := fresh(t, i)
				first := s.Snapshot(new(sync.Mutex))
				replay(t, s, i, j)
				second := s.Snapshot(new(sync.Mutex))
				forked := first.Fork()
				replay(t, s, j, len(evs))
				replay(t, forked, i, len(evs))
				if want := fresh(t, i); !same(first, want) {
					t.Fatalf("snapshot at %d changed after %s…", i, evs[i:][0].EventType())
				}
				if want := fresh(t, j); !same(second, want) {
					t.Fatalf("snapshot at %d changed", j)
				}
				want := fresh(t, len(evs))
				if !same(s, want) {
					t.Fatal("the original differs from a state that never shared")
				}
				if !same(forked, want) {
					t.Fatal("the fork differs from a state that never shared")
				}
			})
		}
	}
}
