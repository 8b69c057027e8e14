// Package eventlogtest runs real, embedded JetStream servers for tests.
package eventlogtest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/iam-project/iam/eventlog"
)

// MustRunJetStream starts an embedded JetStream server on a random port with
// its store in tb.TempDir(), and shuts it down when the test ends.
func MustRunJetStream(tb testing.TB) *server.Server {
	tb.Helper()
	return MustRunServer(tb, eventlog.ServerConfig{StoreDir: tb.TempDir(), Port: -1})
}

// MustRunServer starts an embedded JetStream server with cfg and shuts it
// down when the test ends. Shutting it down earlier is fine.
func MustRunServer(tb testing.TB, cfg eventlog.ServerConfig) *server.Server {
	tb.Helper()
	s, err := eventlog.RunServer(cfg)
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
	nc, err := eventlog.Connect(s, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
