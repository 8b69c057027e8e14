package projectortest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/projector"
)

// LogHarness is one empty log for RunLogTests.
type LogHarness struct {
	// Log is the log under test; it must be empty.
	Log projector.Log
	// Append stores a message in the log Log reads: through Log itself, or
	// through the hub's log when Log is a region's view of it.
	Append func(ctx context.Context, req eventlog.AppendRequest) (uint64, error)
	// DeleteStream, when set, deletes the log's stream, for the case of a
	// log that no longer exists; without it that case is skipped.
	DeleteStream func(ctx context.Context) error
}

// RunLogTests runs the projector.Log conformance suite, each case on a
// fresh log from open:
//
//   - Head is 0 on an empty log and then the last appended sequence;
//   - Get returns the entry at a sequence (its MsgID, subject and commits),
//     not_found past the head;
//   - Follow delivers the entries from a sequence on, in order and
//     contiguous, then those appended while it follows;
//   - StreamName names the log;
//   - with DeleteStream, Head fails with an error wrapping
//     eventlog.ErrStreamGone once the stream is gone.
func RunLogTests(t *testing.T, open func(t *testing.T) LogHarness) {
	t.Run("Head", func(t *testing.T) {
		h := open(t)
		ctx := testContext(t)
		wantHead(ctx, t, h.Log, 0)
		last := appendN(ctx, t, h, 1, 3)
		wantHead(ctx, t, h.Log, last)
	})
	t.Run("Get", func(t *testing.T) {
		h := open(t)
		ctx := testContext(t)
		last := appendN(ctx, t, h, 1, 3)
		for seq := uint64(1); seq <= last; seq++ {
			e, err := h.Log.Get(ctx, seq)
			if err != nil {
				t.Fatalf("Get %d: got %v, want nil", seq, err)
			}
			wantEntry(t, e, seq)
		}
		if _, err := h.Log.Get(ctx, last+1); iam.ErrorCode(err) != iam.ENotFound {
			t.Errorf("Get %d past the head: got %v, want %s", last+1, err, iam.ENotFound)
		}
	})
	t.Run("Follow", func(t *testing.T) {
		h := open(t)
		ctx := testContext(t)
		appendN(ctx, t, h, 1, 3)
		f, err := h.Log.Follow(ctx, 2)
		if err != nil {
			t.Fatalf("Follow 2: got %v, want nil", err)
		}
		defer f.Stop()
		next := uint64(2)
		collect := func(to uint64) {
			t.Helper()
			for next <= to {
				batch, err := f.Next(ctx, 0)
				if err != nil {
					t.Fatalf("Next at %d: got %v, want entries", next, err)
				}
				for _, e := range batch {
					wantEntry(t, e, next)
					next++
				}
			}
		}
		collect(3)
		last := appendN(ctx, t, h, 4, 3)
		collect(last)
		if next != last+1 {
			t.Errorf("followed to %d, want %d", next-1, last)
		}
	})
	t.Run("StreamName", func(t *testing.T) {
		h := open(t)
		if h.Log.StreamName() == "" {
			t.Errorf(`StreamName: got "", want the stream's name`)
		}
	})
	t.Run("Head_StreamGone", func(t *testing.T) {
		h := open(t)
		if h.DeleteStream == nil {
			t.Skip("no DeleteStream")
		}
		ctx := testContext(t)
		appendN(ctx, t, h, 1, 1)
		if err := h.DeleteStream(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Log.Head(ctx); !errors.Is(err, eventlog.ErrStreamGone) {
			t.Errorf("Head after the stream was deleted: got %v, want an error wrapping ErrStreamGone", err)
		}
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func logMsgID(seq uint64) string { return fmt.Sprintf("log-%d", seq) }

// appendN appends entries from..from+n-1 (on an empty log they land at
// those sequences) and returns the last sequence.
func appendN(ctx context.Context, t *testing.T, h LogHarness, from uint64, n int) uint64 {
	t.Helper()
	var last uint64
	for _, e := range Entries(from, n) {
		seq, err := h.Append(ctx, eventlog.AppendRequest{Subject: e.Subject, Commits: e.Commits, MsgID: logMsgID(e.Seq)})
		if err != nil || seq != e.Seq {
			t.Fatalf("Append %s: got %d, %v; want %d, nil", logMsgID(e.Seq), seq, err, e.Seq)
		}
		last = seq
	}
	return last
}

func wantHead(ctx context.Context, t *testing.T, l projector.Log, want uint64) {
	t.Helper()
	if got, err := l.Head(ctx); err != nil || got != want {
		t.Errorf("Head: got %d, %v; want %d, nil", got, err, want)
	}
}

// wantEntry checks that e is what appendN stored at seq.
func wantEntry(t *testing.T, e iam.LogEntry, seq uint64) {
	t.Helper()
	want := Entries(seq, 1)[0]
	if e.Seq != seq || e.MsgID != logMsgID(seq) || e.Subject != want.Subject {
		t.Errorf("entry: got %d %q on %s, want %d %q on %s", e.Seq, e.MsgID, e.Subject, seq, logMsgID(seq), want.Subject)
	}
	if len(e.Commits) != 1 || len(e.Commits[0].Events) != 1 {
		t.Errorf("entry %d: got %d commits, want 1 with 1 event", seq, len(e.Commits))
		return
	}
	if got, ok := e.Commits[0].Events[0].(iam.RealmCreated); !ok || got.Realm != want.Commits[0].Events[0].(iam.RealmCreated).Realm {
		t.Errorf("entry %d: got event %#v, want %#v", seq, e.Commits[0].Events[0], want.Commits[0].Events[0])
	}
}
