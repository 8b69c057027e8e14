package eventlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

func TestHeartbeater_Beat(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := &eventlog.Heartbeater{Log: l, Interval: time.Second, Now: func() time.Time { return now }}

	t.Run("empty log gets a beat", func(t *testing.T) {
		if err := h.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		e, err := l.Get(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if e.Subject != eventlog.HeartbeatSubject || len(e.Commits) != 1 {
			t.Fatalf("got %s with %d commits, want one commit on %s", e.Subject, len(e.Commits), eventlog.HeartbeatSubject)
		}
		if hb, ok := e.Commits[0].Events[0].(iam.Heartbeat); !ok || !hb.At.Equal(now) {
			t.Fatalf("got event %#v, want a Heartbeat at %s", e.Commits[0].Events[0], now)
		}
	})
	t.Run("a second beat in the same interval appends nothing", func(t *testing.T) {
		// Fresh last entry, and the same MsgID ("hb.<interval>") were it
		// appended: either way the log keeps one beat.
		if err := h.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		head, err := l.Head(ctx)
		if err != nil || head != 1 {
			t.Fatalf("head: got %d, %v, want 1", head, err)
		}
	})
	t.Run("a fresh entry suppresses the beat", func(t *testing.T) {
		seq := mustAppend(t, l, eventlog.AppendRequest{Subject: "iam.evt.r.commit", Commits: commit("r", "a")})
		h2 := &eventlog.Heartbeater{Log: l, Interval: time.Hour}
		if err := h2.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		head, err := l.Head(ctx)
		if err != nil || head != seq {
			t.Fatalf("head: got %d, %v, want %d (no beat)", head, err, seq)
		}
	})
	t.Run("an idle log gets one beat per interval", func(t *testing.T) {
		before, _ := l.Head(ctx)
		hb := &eventlog.Heartbeater{Log: l, Interval: 50 * time.Millisecond}
		if err := hb.Start(ctx); err != nil {
			t.Fatal(err)
		}
		eventlogtest.Eventually(t, 5*time.Second, fmt.Sprintf("head at least %d", before+3), func() bool {
			head, _ := l.Head(ctx)
			return head >= before+3
		})
		hb.Stop()
	})
}
