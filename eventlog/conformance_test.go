package eventlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/writer"
	"github.com/iam-project/iam/eventlog/writer/writertest"
	"github.com/iam-project/iam/projector/projectortest"
)

// logKinds are the two ways a Log is used: over the local JetStream (the
// all-in-one, a hub node) and attached to the hub's stream across a
// region's leaf link. Each returns the log under test and the hub-side log
// that owns the stream (the same one when local).
var logKinds = []struct {
	name string
	open func(t *testing.T) (l, owner *eventlog.Log)
}{
	{"local", func(t *testing.T) (*eventlog.Log, *eventlog.Log) {
		l := eventlogtest.MustOpenLog(t, eventlog.Config{})
		return l, l
	}},
	{"attached", func(t *testing.T) (*eventlog.Log, *eventlog.Log) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h := eventlogtest.StartHub(t, 1, false)
		hubLog, err := eventlog.OpenRetry(ctx, eventlogtest.MustConnectURL(t, h.ClientURLs()), eventlog.Config{})
		if err != nil {
			t.Fatal(err)
		}
		rs := eventlogtest.StartRegion(t, "eu-west", h.LeafURLs())
		l, err := eventlog.Attach(ctx, eventlogtest.MustConnectURL(t, rs.ClientURL()), eventlog.Config{Domain: natsnode.HubDomain})
		if err != nil {
			t.Fatal(err)
		}
		return l, hubLog
	}},
}

// TestLog_ProjectorLog runs the projector.Log conformance suite against
// both kinds of Log; entries are appended through the stream's owner.
func TestLog_ProjectorLog(t *testing.T) {
	for _, kind := range logKinds {
		t.Run(kind.name, func(t *testing.T) {
			projectortest.RunLogTests(t, func(t *testing.T) projectortest.LogHarness {
				l, owner := kind.open(t)
				return projectortest.LogHarness{Log: l, Append: owner.Append,
					DeleteStream: func(ctx context.Context) error {
						return owner.JetStream().DeleteStream(ctx, owner.StreamName())
					}}
			})
		})
	}
}

// TestLog_WriterLog runs the writer.Log conformance suite against both
// kinds of Log, appending through the log under test (an attached log
// appends across the leaf link, as forwarded tools do).
func TestLog_WriterLog(t *testing.T) {
	for _, kind := range logKinds {
		t.Run(kind.name, func(t *testing.T) {
			writertest.RunLogTests(t, func(t *testing.T) writer.Log {
				l, _ := kind.open(t)
				return l
			})
		})
	}
}
