package eventlog

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded nats-server with JetStream.
type ServerConfig struct {
	// StoreDir is where JetStream keeps its data. Required.
	StoreDir string
	// Host to listen on for clients. Defaults to 127.0.0.1.
	Host string
	// Port to listen on for clients: -1 picks a random free port, 0 means
	// the NATS default (4222).
	Port int
	// SyncAlways makes the server fsync every write before acknowledging
	// it. RunServer fails if the server did not honour it.
	SyncAlways bool
	// JetStreamDomain is the server's JetStream domain, if any.
	JetStreamDomain string
	// ServerName names the server (defaults to a generated id).
	ServerName string
	// Logger, when set, receives the server's notices, warnings and errors.
	// The server is silent by default.
	Logger server.Logger
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Defaults to 10s.
	ReadyTimeout time.Duration
}

// RunServer starts an embedded nats-server with JetStream and waits until it
// accepts connections. It asserts that the JetStream settings asked for
// (SyncAlways, domain) took effect, and shuts the server down and fails if
// not. The caller owns the server: Shutdown and WaitForShutdown it.
func RunServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("run nats-server: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName:      cfg.ServerName,
		Host:            cfg.Host,
		Port:            cfg.Port,
		JetStream:       true,
		StoreDir:        cfg.StoreDir,
		SyncAlways:      cfg.SyncAlways,
		JetStreamDomain: cfg.JetStreamDomain,
		NoSigs:          true,
		NoLog:           cfg.Logger == nil,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("run nats-server: %w", err)
	}
	if cfg.Logger != nil {
		s.SetLoggerV2(cfg.Logger, false, false, false)
	}
	s.Start()
	fail := func(err error) (*server.Server, error) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("run nats-server: %w", err)
	}
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		return fail(fmt.Errorf("not ready for connections after %s", cfg.ReadyTimeout))
	}
	if !s.JetStreamEnabled() {
		return fail(errors.New("jetstream not enabled"))
	}
	// Read the effective settings back: a durability setting that silently
	// did not apply is worse than a server that does not start.
	js := s.JetStreamConfig()
	if js == nil {
		return fail(errors.New("jetstream config unavailable"))
	}
	if js.SyncAlways != cfg.SyncAlways {
		return fail(fmt.Errorf("jetstream sync_always is %t, want %t", js.SyncAlways, cfg.SyncAlways))
	}
	if js.Domain != cfg.JetStreamDomain {
		return fail(fmt.Errorf("jetstream domain is %q, want %q", js.Domain, cfg.JetStreamDomain))
	}
	return s, nil
}

// Connect connects to an embedded server (see ConnectURL).
func Connect(s *server.Server, opts ...nats.Option) (*nats.Conn, error) {
	return ConnectURL(s.ClientURL(), opts...)
}

// ConnectURL connects to url with options suited to a long-running service:
// reconnect forever, 250ms between attempts (plus jitter), and retry the
// first connect too. Extra options are applied after these defaults.
func ConnectURL(url string, opts ...nats.Option) (*nats.Conn, error) {
	o := []nats.Option{
		nats.Name("iam"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
	}
	nc, err := nats.Connect(url, append(o, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return nc, nil
}
