// Package eventlogtest holds what tests on the real parts share: embedded
// JetStream servers (a stand-alone server, a hub cluster with leaf
// listeners, regional leaf nodes, on loopback with ports picked by the
// system and stores in the test's temp dirs) and the one polling helper,
// Eventually.
package eventlogtest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/natsnode"
)

// MustRunJetStream starts an embedded JetStream server on a random port with
// its store in tb.TempDir(), and shuts it down when the test ends.
func MustRunJetStream(tb testing.TB) *server.Server {
	tb.Helper()
	return MustRunServer(tb, natsnode.ServerConfig{StoreDir: tb.TempDir(), Port: -1})
}

// MustRunServer starts an embedded JetStream server with cfg and shuts it
// down when the test ends. Shutting it down earlier is fine.
func MustRunServer(tb testing.TB, cfg natsnode.ServerConfig) *server.Server {
	tb.Helper()
	s, err := natsnode.RunServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// MustConnect connects to s and closes the connection when the test ends.
func MustConnect(tb testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	return MustConnectURL(tb, s.ClientURL(), opts...)
}

// MustConnectURL connects to url (comma-separated URLs of a cluster) and
// closes the connection when the test ends.
func MustConnectURL(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := natsnode.ConnectURL(url, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// MustOpenLog starts a server and opens the log on it with cfg.
func MustOpenLog(tb testing.TB, cfg eventlog.Config) *eventlog.Log {
	tb.Helper()
	s := MustRunJetStream(tb)
	l, err := eventlog.Open(context.Background(), MustConnect(tb, s), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// Hub is an in-process hub cluster on loopback.
type Hub struct {
	Nodes []*server.Server
}

// StartHub starts an n-node JetStream cluster in domain "hub" with a leaf
// listener on every node (one node is a plain server). The nodes start
// together: JetStream elects its meta leader once a quorum is up. They are
// shut down when the test ends.
func StartHub(tb testing.TB, n int, sync bool) *Hub {
	tb.Helper()
	h := &Hub{Nodes: make([]*server.Server, n)}
	// A JetStream cluster needs its routes configured up front: reserve
	// the route ports first.
	var routes []string
	for range n {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(FreePort(tb)))
	}
	errs := make(chan error, n)
	for i := range n {
		cfg := natsnode.NodeConfig{
			ServerConfig: natsnode.ServerConfig{
				StoreDir: tb.TempDir(), Port: -1, SyncAlways: sync,
				JetStreamDomain: natsnode.HubDomain, ServerName: fmt.Sprintf("hub-%d", i),
			},
			LeafListen: "127.0.0.1:-1",
		}
		if n > 1 {
			cfg.ClusterName, cfg.ClusterListen, cfg.Routes = "iam-hub", strings.TrimPrefix(routes[i], "nats-route://"), routes
		}
		go func() {
			var err error
			h.Nodes[i], err = natsnode.RunNode(cfg)
			errs <- err
		}()
	}
	tb.Cleanup(func() {
		for _, s := range h.Nodes {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	for range n {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	return h
}

// ClientURLs returns the client URLs of every node, comma-separated.
func (h *Hub) ClientURLs() string {
	var urls []string
	for _, s := range h.Nodes {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// LeafURLs returns the leaf-node URLs of every node.
func (h *Hub) LeafURLs() []string {
	var urls []string
	for _, s := range h.Nodes {
		urls = append(urls, natsnode.LeafURL(s))
	}
	return urls
}

// StartRegion starts a region's leaf node, in its own domain, dialling the
// hub's leaf URLs, and waits for its leaf connection.
func StartRegion(tb testing.TB, name string, leafURLs []string) *server.Server {
	tb.Helper()
	s, err := natsnode.RunNode(natsnode.NodeConfig{
		ServerConfig: natsnode.ServerConfig{StoreDir: tb.TempDir(), Port: -1, JetStreamDomain: name, ServerName: "region-" + name},
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
	if err := natsnode.WaitLeaf(ctx, s, 1); err != nil {
		tb.Fatal(err)
	}
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ForEachSync runs fn as two sub-benchmarks, each against a fresh log on a
// fresh server: with SyncAlways off, then on.
func ForEachSync(b *testing.B, fn func(b *testing.B, l *eventlog.Log)) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%t", sync), func(b *testing.B) {
			s := MustRunServer(b, natsnode.ServerConfig{StoreDir: b.TempDir(), Port: -1, SyncAlways: sync})
			l, err := eventlog.Open(context.Background(), MustConnect(b, s), eventlog.Config{})
			if err != nil {
				b.Fatal(err)
			}
			fn(b, l)
		})
	}
}

// Eventually polls cond, a little more slowly each time (1 ms up to 50 ms
// apart), until it holds, failing the test with what after timeout. It is
// the one polling helper of the tests: never sleep before an assertion,
// wait for the condition instead.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}
