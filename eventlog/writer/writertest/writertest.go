// Package writertest is the conformance suite of writer.Log, the log a
// Writer appends to and catches up from, run by the tests of every
// implementation: RunLogTests checks the contract documented on writer.Log
// (and the eventlog.Log.Append it refers to), nothing more.
package writertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/writer"
)

// RunLogTests runs the writer.Log conformance suite, each case on a fresh,
// empty log from open:
//
//   - Append returns the sequences 1, 2, ... and Read gives back every
//     entry from a sequence up to the head, in order, with its MsgID,
//     subject and commits;
//   - an Append repeating a MsgID stores nothing and returns the first
//     sequence;
//   - a conditional Append is stored only when ExpectSeq is the realm's
//     last sequence (0: none), else it fails with conflict;
//   - LastForRealm is 0 for a realm without messages, then the sequence of
//     its last one, whatever other realms append;
//   - a bad subject or no commits fail with invalid_argument;
//   - Read returns fn's first error.
func RunLogTests(t *testing.T, open func(t *testing.T) writer.Log) {
	t.Run("Append_Read", func(t *testing.T) {
		l, ctx := open(t), testContext(t)
		for i, realm := range []string{"a", "b", "a"} {
			mustAppend(ctx, t, l, request(realm, fmt.Sprintf("m%d", i+1)), uint64(i+1))
		}
		wantRead(ctx, t, l, 1, []string{"a/m1", "b/m2", "a/m3"})
		wantRead(ctx, t, l, 2, []string{"b/m2", "a/m3"})
		wantRead(ctx, t, l, 4, nil)
	})
	t.Run("Append_Duplicate", func(t *testing.T) {
		l, ctx := open(t), testContext(t)
		mustAppend(ctx, t, l, request("a", "m1"), 1)
		mustAppend(ctx, t, l, request("a", "m2"), 2)
		mustAppend(ctx, t, l, request("a", "m1"), 1)
		wantRead(ctx, t, l, 1, []string{"a/m1", "a/m2"})
	})
	t.Run("Append_Conditional", func(t *testing.T) {
		l, ctx := open(t), testContext(t)
		cond := func(realm, msgID string, expect uint64) eventlog.AppendRequest {
			r := request(realm, msgID)
			r.ExpectRealm, r.ExpectSeq = realm, expect
			return r
		}
		mustAppend(ctx, t, l, cond("a", "m1", 0), 1)
		wantConflict(ctx, t, l, cond("a", "stale-none", 0))
		mustAppend(ctx, t, l, request("b", "m2"), 2)
		mustAppend(ctx, t, l, cond("a", "m3", 1), 3) // b's append is not a's
		wantConflict(ctx, t, l, cond("a", "stale", 1))
		wantConflict(ctx, t, l, cond("a", "ahead", 4))
		mustAppend(ctx, t, l, cond("b", "m4", 2), 4)
		wantRead(ctx, t, l, 1, []string{"a/m1", "b/m2", "a/m3", "b/m4"})
	})
	t.Run("LastForRealm", func(t *testing.T) {
		l, ctx := open(t), testContext(t)
		wantLast(ctx, t, l, "a", 0)
		mustAppend(ctx, t, l, request("a", "m1"), 1)
		mustAppend(ctx, t, l, request("b", "m2"), 2)
		wantLast(ctx, t, l, "a", 1)
		wantLast(ctx, t, l, "b", 2)
		mustAppend(ctx, t, l, request("a", "m3"), 3)
		wantLast(ctx, t, l, "a", 3)
		wantLast(ctx, t, l, "b", 2)
		wantLast(ctx, t, l, "c", 0)
	})
	t.Run("Append_Invalid", func(t *testing.T) {
		l, ctx := open(t), testContext(t)
		for _, tc := range []struct {
			name string
			req  eventlog.AppendRequest
		}{
			{"subject outside the log", eventlog.AppendRequest{Subject: "other.a.commit", Commits: request("a", "x").Commits}},
			{"subject without aggregate", eventlog.AppendRequest{Subject: eventlog.SubjectPrefix + ".a", Commits: request("a", "x").Commits}},
			{"no commits", eventlog.AppendRequest{Subject: request("a", "x").Subject}},
		} {
			if seq, err := l.Append(ctx, tc.req); iam.ErrorCode(err) != iam.EInvalid {
				t.Errorf("%s: got %d, %v; want %s", tc.name, seq, err, iam.EInvalid)
			}
		}
		wantRead(ctx, t, l, 1, nil)
	})
	t.Run("Read_Error", func(t *testing.T) {
		l, ctx := open(t), testContext(t)
		mustAppend(ctx, t, l, request("a", "m1"), 1)
		mustAppend(ctx, t, l, request("a", "m2"), 2)
		stop := errors.New("stop")
		calls := 0
		err := l.Read(ctx, 1, func(iam.LogEntry) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Read with fn failing: got %v after %d calls, want fn's error after 1", err, calls)
		}
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// request is an unconditional append of one commit by actor msgID to
// realm's "commit" aggregate.
func request(realm, msgID string) eventlog.AppendRequest {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return eventlog.AppendRequest{
		Subject: eventlog.SubjectPrefix + "." + realm + ".commit",
		MsgID:   msgID,
		Commits: []iam.Commit{{Actor: msgID, At: at, Events: []iam.Event{iam.Heartbeat{At: at}}}},
	}
}

func mustAppend(ctx context.Context, t *testing.T, l writer.Log, req eventlog.AppendRequest, want uint64) {
	t.Helper()
	if got, err := l.Append(ctx, req); err != nil || got != want {
		t.Fatalf("Append %s: got %d, %v; want %d, nil", req.MsgID, got, err, want)
	}
}

func wantConflict(ctx context.Context, t *testing.T, l writer.Log, req eventlog.AppendRequest) {
	t.Helper()
	if got, err := l.Append(ctx, req); iam.ErrorCode(err) != iam.EConflict {
		t.Errorf("Append %s expecting %s at %d: got %d, %v; want %s", req.MsgID, req.ExpectRealm, req.ExpectSeq, got, err, iam.EConflict)
	}
}

func wantLast(ctx context.Context, t *testing.T, l writer.Log, realm string, want uint64) {
	t.Helper()
	if got, err := l.LastForRealm(ctx, realm); err != nil || got != want {
		t.Errorf("LastForRealm %s: got %d, %v; want %d, nil", realm, got, err, want)
	}
}

// wantRead reads from from and checks the entries, each "realm/msgID",
// at from, from+1, ...
func wantRead(ctx context.Context, t *testing.T, l writer.Log, from uint64, want []string) {
	t.Helper()
	var got []string
	next := from
	err := l.Read(ctx, from, func(e iam.LogEntry) error {
		if e.Seq != next {
			t.Errorf("Read from %d: got sequence %d, want %d", from, e.Seq, next)
		}
		next = e.Seq + 1
		realm := ""
		if len(e.Commits) == 1 && e.Commits[0].Actor == e.MsgID {
			realm = strings.TrimSuffix(strings.TrimPrefix(e.Subject, eventlog.SubjectPrefix+"."), ".commit")
		}
		got = append(got, realm+"/"+e.MsgID)
		return nil
	})
	if err != nil {
		t.Fatalf("Read from %d: got %v, want nil", from, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Read from %d: got %v, want %v", from, got, want)
	}
}
