package eventlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
)

// TestTopology_HubNodeLoss runs a 3-node hub (stream R3, fsync on every
// write) and two regional leaf nodes, appends from several writers while
// one hub node is shut down, and checks that every acknowledged append is
// readable, once, from both regions, and that the hub keeps accepting
// appends with 2 of 3 nodes.
func TestTopology_HubNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	h := eventlogtest.StartHub(t, 3, true)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	hubNC := eventlogtest.MustConnectURL(t, h.ClientURLs())
	log, err := eventlog.OpenRetry(ctx, hubNC, eventlog.Config{Replicas: 3, PublishTimeout: 2 * time.Second, MaxRetries: 20})
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]*eventlog.Log{}
	for _, name := range []string{"eu-west", "us-east"} {
		rs := eventlogtest.StartRegion(t, name, h.LeafURLs())
		l, err := eventlog.Attach(ctx, eventlogtest.MustConnectURL(t, rs.ClientURL()), eventlog.Config{Domain: natsnode.HubDomain})
		if err != nil {
			t.Fatal(err)
		}
		regions[name] = l
	}

	const writers, perWriter = 4, 60
	type acked struct {
		seq   uint64
		msgID string
	}
	var mu sync.Mutex
	var acks []acked
	var failures int
	var wg sync.WaitGroup
	killAt := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := fmt.Sprintf("iam.evt.r%d.commit", w)
			for i := range perWriter {
				if w == 0 && i == perWriter/3 {
					close(killAt)
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				seq, err := log.Append(ctx, eventlog.AppendRequest{Subject: subject, Commits: commit("r", id), MsgID: id})
				mu.Lock()
				if err != nil {
					failures++ // not acknowledged: may or may not be stored
				} else {
					acks = append(acks, acked{seq, id})
				}
				mu.Unlock()
			}
		}()
	}
	<-killAt
	// Kill the stream's leader if we can tell which it is: the hardest case.
	victim := 0
	for i, s := range h.Nodes {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, eventlog.DefaultStream) {
			victim = i
		}
	}
	t.Logf("shutting down hub node %s", h.Nodes[victim].Name())
	h.Nodes[victim].Shutdown()
	wg.Wait()
	t.Logf("%d appends acknowledged, %d not", len(acks), failures)
	if len(acks) < writers*perWriter*9/10 {
		t.Errorf("got %d acknowledged appends, want at least 90%% of %d", len(acks), writers*perWriter)
	}

	// The stream still takes writes with 2 of 3 nodes.
	last, err := log.Append(ctx, eventlog.AppendRequest{Subject: "iam.evt.r0.commit", Commits: commit("r", "after"), MsgID: "after"})
	if err != nil {
		t.Fatalf("append with 2 of 3 hub nodes: %v", err)
	}
	acks = append(acks, acked{last, "after"})

	for name, l := range regions {
		got := map[uint64]string{}
		seen := map[string]uint64{}
		// A region whose leaf link was on the lost node redials another
		// one; until then its requests find no responders.
		var lastErr string
		eventlogtest.Eventually(t, 30*time.Second, name+" to read the log", func() bool {
			clear(got)
			clear(seen)
			err := l.Read(ctx, 1, func(e iam.LogEntry) error {
				got[e.Seq] = e.MsgID
				if prev, dup := seen[e.MsgID]; dup {
					t.Errorf("%s: msg id %s stored twice, at %d and %d", name, e.MsgID, prev, e.Seq)
				}
				seen[e.MsgID] = e.Seq
				return nil
			})
			if err != nil && err.Error() != lastErr {
				lastErr = err.Error()
				t.Logf("%s: read: %v; retrying", name, err)
			}
			return err == nil
		})
		for _, a := range acks {
			if got[a.seq] != a.msgID {
				t.Errorf("%s: acknowledged %s at %d, got %q there", name, a.msgID, a.seq, got[a.seq])
			}
		}
		t.Logf("%s: read %d entries, all %d acknowledged present", name, len(got), len(acks))
	}
}

// TestTopology_RegionReadsHubDirectly checks the wiring a region relies on:
// a Log attached in the hub's domain over a leaf connection follows the
// hub's stream, and an append made at the hub arrives.
func TestTopology_RegionReadsHubDirectly(t *testing.T) {
	h := eventlogtest.StartHub(t, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubLog, err := eventlog.OpenRetry(ctx, eventlogtest.MustConnectURL(t, h.ClientURLs()), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rs := eventlogtest.StartRegion(t, "eu-west", h.LeafURLs())
	l, err := eventlog.Attach(ctx, eventlogtest.MustConnectURL(t, rs.ClientURL()), eventlog.Config{Domain: natsnode.HubDomain})
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.Follow(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	seq := mustAppend(t, hubLog, eventlog.AppendRequest{Subject: "iam.evt.r.commit", Commits: commit("r", "a")})
	batch, err := f.Next(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := batch[len(batch)-1].Seq; got != seq {
		t.Fatalf("got sequence %d, want %d", got, seq)
	}
	head, err := l.Head(ctx)
	if err != nil || head != seq {
		t.Fatalf("head from the region: got %d, %v, want %d", head, err, seq)
	}
}
