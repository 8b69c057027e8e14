// Package projectortest is the conformance suite of projector.Sink, run by
// the tests of every implementation (OpenFGA's storage suite, litestream's
// RunWithReplicaClient): RunSinkTests checks the contract documented on
// projector.Sink, and nothing an implementation adds to it.
package projectortest

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/projector"
)

// SinkOption adjusts RunSinkTests to what an implementation offers.
type SinkOption func(*sinkOptions)

type sinkOptions struct {
	reopen func(t *testing.T, s projector.Sink) projector.Sink
}

// WithReopen runs the persistence case: reopen closes s and opens the sink
// again on the same storage, returning the new one. Without it (a sink that
// keeps nothing) that case is skipped.
func WithReopen(reopen func(t *testing.T, s projector.Sink) projector.Sink) SinkOption {
	return func(o *sinkOptions) { o.reopen = reopen }
}

// Entries returns n log entries from sequence from on, as the projector
// delivers them: entry seq has MsgID "sink-<seq>" and one commit creating
// realm "r<seq>", so that applying it changes a read model.
func Entries(from uint64, n int) []iam.LogEntry {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]iam.LogEntry, n)
	for i := range out {
		seq := from + uint64(i)
		at := base.Add(time.Duration(seq) * time.Millisecond)
		realm := "r" + strconv.FormatUint(seq, 10)
		out[i] = iam.LogEntry{Seq: seq, Subject: "iam.evt." + realm + ".commit", MsgID: msgID(seq), Time: at,
			Commits: []iam.Commit{{At: at, Events: []iam.Event{iam.RealmCreated{InRealm: iam.InRealm{Realm: realm}, Name: "Realm " + realm}}}}}
	}
	return out
}

func msgID(seq uint64) string { return fmt.Sprintf("sink-%d", seq) }

// RunSinkTests runs the projector.Sink conformance suite, each case on a
// fresh sink from open (which must be empty: nothing applied):
//
//   - a new sink is at 0 and "";
//   - ApplyEntries of contiguous batches advances Applied and AppliedMsgID
//     together, to the last entry of each batch;
//   - a batch that does not continue the applied sequence (a gap, a
//     repeat, a hole inside the batch) is refused with an error, and the
//     position stays where it was;
//   - with WithReopen, the position survives closing and reopening, and the
//     reopened sink goes on from it;
//   - Applied and AppliedMsgID may be called from other goroutines during
//     ApplyEntries (run it under -race), and Applied never goes back.
func RunSinkTests(t *testing.T, open func(t *testing.T) projector.Sink, opts ...SinkOption) {
	var o sinkOptions
	for _, opt := range opts {
		opt(&o)
	}
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		wantPosition(t, s, 0)
	})
	t.Run("ApplyEntries", func(t *testing.T) {
		s := open(t)
		mustApply(t, s, Entries(1, 1))
		wantPosition(t, s, 1)
		mustApply(t, s, Entries(2, 5))
		wantPosition(t, s, 6)
		mustApply(t, s, Entries(7, 100))
		wantPosition(t, s, 106)
	})
	t.Run("ApplyEntries_NotContiguous", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			applied uint64 // applied first
			batch   []iam.LogEntry
		}{
			{"first entry not 1", 0, Entries(2, 3)},
			{"gap", 3, Entries(5, 2)},
			{"repeat of the last", 3, Entries(3, 2)},
			{"from the start again", 3, Entries(1, 4)},
			{"hole inside the batch", 3, append(Entries(4, 2), Entries(7, 2)...)},
			{"out of order inside the batch", 3, append(Entries(5, 1), Entries(4, 1)...)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t)
				if tc.applied > 0 {
					mustApply(t, s, Entries(1, int(tc.applied)))
				}
				if err := s.ApplyEntries(tc.batch); err == nil {
					t.Errorf("ApplyEntries %d..%d at %d: got nil, want an error", tc.batch[0].Seq, tc.batch[len(tc.batch)-1].Seq, tc.applied)
				}
				wantPosition(t, s, tc.applied)
			})
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		if o.reopen == nil {
			t.Skip("the sink does not persist (no WithReopen)")
		}
		s := open(t)
		s = o.reopen(t, s)
		wantPosition(t, s, 0)
		mustApply(t, s, Entries(1, 3))
		mustApply(t, s, Entries(4, 4))
		s = o.reopen(t, s)
		wantPosition(t, s, 7)
		if err := s.ApplyEntries(Entries(7, 1)); err == nil {
			t.Errorf("ApplyEntries of 7 again after reopen: got nil, want an error")
		}
		mustApply(t, s, Entries(8, 2))
		wantPosition(t, s, 9)
		s = o.reopen(t, s)
		wantPosition(t, s, 9)
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		const batches, size = 50, 7
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last uint64
				for {
					select {
					case <-stop:
						return
					default:
					}
					a := s.Applied()
					_ = s.AppliedMsgID()
					if a < last {
						t.Errorf("Applied went back: got %d after %d", a, last)
						return
					}
					last = a
				}
			}()
		}
		for b := range batches {
			from := uint64(b*size + 1)
			if err := s.ApplyEntries(Entries(from, size)); err != nil {
				t.Errorf("ApplyEntries %d..%d: got %v, want nil", from, from+size-1, err)
				break
			}
			wantPosition(t, s, from+size-1)
		}
		close(stop)
		wg.Wait()
		wantPosition(t, s, batches*size)
	})
}

func mustApply(t *testing.T, s projector.Sink, entries []iam.LogEntry) {
	t.Helper()
	if err := s.ApplyEntries(entries); err != nil {
		t.Fatalf("ApplyEntries %d..%d at %d: got %v, want nil", entries[0].Seq, entries[len(entries)-1].Seq, s.Applied(), err)
	}
}

// wantPosition checks that s is at seq, with the MsgID of Entries' entry
// there ("" at 0).
func wantPosition(t *testing.T, s projector.Sink, seq uint64) {
	t.Helper()
	if got := s.Applied(); got != seq {
		t.Errorf("Applied: got %d, want %d", got, seq)
	}
	want := ""
	if seq > 0 {
		want = msgID(seq)
	}
	if got := s.AppliedMsgID(); got != want {
		t.Errorf("AppliedMsgID: got %q, want %q", got, want)
	}
}
