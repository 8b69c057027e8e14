package eventlog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// TestLog_ReadRange: short ranges (direct gets) and long ones (a
// consumer) give exactly the entries asked for, in order, and leave no
// consumer behind.
func TestLog_ReadRange(t *testing.T) {
	const n = 3000
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	js := l.JetStream()
	data, _ := iam.MarshalCommits(commit("r", "g"))
	for range n {
		if _, err := js.PublishMsgAsync(newEnvelopeMsg("iam.evt.r.g", data)); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	ctx := context.Background()
	for _, tc := range []struct{ from, to uint64 }{{1, 1}, {5, 20}, {0, 3}, {10, 9}, {1, n}, {700, 2900}} {
		t.Run(fmt.Sprintf("%d-%d", tc.from, tc.to), func(t *testing.T) {
			next := max(tc.from, 1)
			if err := l.ReadRange(ctx, tc.from, tc.to, func(e iam.LogEntry) error {
				if e.Seq != next {
					return fmt.Errorf("got entry %d, want %d", e.Seq, next)
				}
				next++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if want := max(tc.to+1, max(tc.from, 1)); next != want {
				t.Errorf("read up to %d, want up to %d", next-1, want-1)
			}
		})
	}
	stream, err := js.Stream(ctx, l.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("consumers left: got %d, want 0", info.State.Consumers)
	}
}
