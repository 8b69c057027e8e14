package eventlog_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
)

// hub is an in-process hub cluster on loopback.
type hub struct {
	nodes []*server.Server
}

// startHub starts an n-node JetStream cluster in domain "hub" with a leaf
// listener on every node. The nodes start together: JetStream elects its
// meta leader once a quorum is up.
func startHub(tb testing.TB, n int, sync bool) *hub {
	tb.Helper()
	h := &hub{nodes: make([]*server.Server, n)}
	// A JetStream cluster needs its routes configured up front: reserve
	// the route ports first.
	var routes []string
	for range n {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(freePort(tb)))
	}
	errs := make(chan error, n)
	for i := range n {
		cfg := eventlog.NodeConfig{
			ServerConfig: eventlog.ServerConfig{
				StoreDir: tb.TempDir(), Port: -1, SyncAlways: sync,
				JetStreamDomain: eventlog.HubDomain, ServerName: fmt.Sprintf("hub-%d", i),
			},
			LeafListen: "127.0.0.1:-1",
		}
		if n > 1 { // one node is a plain server
			cfg.ClusterName, cfg.ClusterListen, cfg.Routes = "iam-hub", strings.TrimPrefix(routes[i], "nats-route://"), routes
		}
		go func() {
			var err error
			h.nodes[i], err = eventlog.RunNode(cfg)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		for _, s := range h.nodes {
			if s == nil {
				continue
			}
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	return h
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (h *hub) clientURLs() string {
	var urls []string
	for _, s := range h.nodes {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

func (h *hub) leafURLs() []string {
	var urls []string
	for _, s := range h.nodes {
		urls = append(urls, eventlog.LeafURL(s))
	}
	return urls
}

// startRegion starts a region's leaf node, in its own domain, dialling the
// hub's leaf URLs.
func startRegion(tb testing.TB, name string, leafURLs []string) *server.Server {
	tb.Helper()
	s, err := eventlog.RunNode(eventlog.NodeConfig{
		ServerConfig: eventlog.ServerConfig{StoreDir: tb.TempDir(), Port: -1, JetStreamDomain: name, ServerName: "region-" + name},
		LeafRemotes:  leafURLs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventlog.WaitLeaf(ctx, s, 1); err != nil {
		tb.Fatal(err)
	}
	return s
}

func connectURL(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := eventlog.ConnectURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// TestTopology_HubNodeLoss runs a 3-node hub (stream R3, fsync on every
// write) and two regional leaf nodes, appends from several writers while
// one hub node is shut down, and checks that every acknowledged append is
// readable, once, from both regions, and that the hub keeps accepting
// appends with 2 of 3 nodes.
func TestTopology_HubNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	h := startHub(t, 3, true)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	hubNC := connectURL(t, h.clientURLs())
	log, err := eventlog.OpenRetry(ctx, hubNC, eventlog.Config{Replicas: 3, PublishTimeout: 2 * time.Second, MaxRetries: 20})
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]*eventlog.Log{}
	for _, name := range []string{"eu-west", "us-east"} {
		rs := startRegion(t, name, h.leafURLs())
		l, err := eventlog.Attach(ctx, connectURL(t, rs.ClientURL()), eventlog.Config{Domain: eventlog.HubDomain})
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
	for i, s := range h.nodes {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, eventlog.DefaultStream) {
			victim = i
		}
	}
	t.Logf("shutting down hub node %s", h.nodes[victim].Name())
	h.nodes[victim].Shutdown()
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
		var err error
		for try := 0; try == 0 || (err != nil && ctx.Err() == nil); try++ {
			if try > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			clear(got)
			clear(seen)
			err = l.Read(ctx, 1, func(e iam.LogEntry) error {
				got[e.Seq] = e.MsgID
				if prev, dup := seen[e.MsgID]; dup {
					t.Errorf("%s: msg id %s stored twice, at %d and %d", name, e.MsgID, prev, e.Seq)
				}
				seen[e.MsgID] = e.Seq
				return nil
			})
		}
		if err != nil {
			t.Fatalf("%s: read: %v", name, err)
		}
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
	h := startHub(t, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubLog, err := eventlog.OpenRetry(ctx, connectURL(t, h.clientURLs()), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rs := startRegion(t, "eu-west", h.leafURLs())
	l, err := eventlog.Attach(ctx, connectURL(t, rs.ClientURL()), eventlog.Config{Domain: eventlog.HubDomain})
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
