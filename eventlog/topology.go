package eventlog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HubDomain is the JetStream domain of the hub that holds the stream in a
// multi-region topology. Regions name it to read and append across their
// leaf connection.
const HubDomain = "hub"

// DefaultLeafReconnect is how soon a regional leaf node redials the hub
// after losing its link. nats-server's default is 1s plus jitter; a region
// cut for a while must be current again within about a second of the link
// coming back, so it tries more often.
const DefaultLeafReconnect = 250 * time.Millisecond

// NodeConfig configures one nats-server of a topology: a hub cluster node
// (Cluster and LeafListen set), a regional leaf node (LeafRemotes set), or a
// stand-alone server (neither, as RunServer).
type NodeConfig struct {
	ServerConfig

	// ClusterName names the hub's JetStream cluster. Required with
	// ClusterListen.
	ClusterName string
	// ClusterListen is the route listener, host:port (port -1 picks a free
	// one). Empty: not clustered.
	ClusterListen string
	// Routes are the other cluster nodes, nats-route://host:port.
	Routes []string

	// LeafListen is the hub's leaf-node listener, host:port (port -1 picks
	// a free one). The hub does not advertise it, so that regions keep to
	// the URLs they were given (a fault proxy in between is not bypassed).
	LeafListen string

	// LeafRemotes are the hub's leaf URLs (nats-leaf://host:port) a region
	// dials. Discovered URLs are ignored, for the same reason.
	LeafRemotes []string
	// LeafReconnect is the redial interval of LeafRemotes. Default
	// DefaultLeafReconnect.
	LeafReconnect time.Duration
}

// RunNode starts an embedded nats-server with JetStream as a node of a
// topology and waits until it accepts connections. Like RunServer, it
// fails if SyncAlways or the domain did not take effect. A clustered node
// becomes usable for JetStream once a quorum of its cluster is up: see
// WaitJetStream.
func RunNode(cfg NodeConfig) (*server.Server, error) {
	c := cfg.ServerConfig
	if c.StoreDir == "" {
		return nil, errors.New("run nats node: StoreDir is required")
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName:      c.ServerName,
		Host:            c.Host,
		Port:            c.Port,
		JetStream:       true,
		StoreDir:        c.StoreDir,
		SyncAlways:      c.SyncAlways,
		JetStreamDomain: c.JetStreamDomain,
		NoSigs:          true,
		NoLog:           c.Logger == nil,
	}
	if cfg.ClusterListen != "" {
		if cfg.ClusterName == "" {
			return nil, errors.New("run nats node: ClusterName is required with ClusterListen")
		}
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("run nats node: cluster listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: port}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("run nats node: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.LeafListen != "" {
		host, port, err := splitHostPort(cfg.LeafListen)
		if err != nil {
			return nil, fmt.Errorf("run nats node: leaf listen: %w", err)
		}
		opts.LeafNode.Host, opts.LeafNode.Port = host, port
		opts.LeafNode.NoAdvertise = true
	}
	if len(cfg.LeafRemotes) > 0 {
		remote := &server.RemoteLeafOpts{IgnoreDiscoveredServers: true}
		for _, r := range cfg.LeafRemotes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("run nats node: leaf remote %q: %w", r, err)
			}
			remote.URLs = append(remote.URLs, u)
		}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
		opts.LeafNode.ReconnectInterval = cfg.LeafReconnect
		if opts.LeafNode.ReconnectInterval <= 0 {
			opts.LeafNode.ReconnectInterval = DefaultLeafReconnect
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("run nats node: %w", err)
	}
	if c.Logger != nil {
		s.SetLoggerV2(c.Logger, false, false, false)
	}
	s.Start()
	fail := func(err error) (*server.Server, error) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("run nats node %s: %w", c.ServerName, err)
	}
	if !s.ReadyForConnections(c.ReadyTimeout) {
		return fail(fmt.Errorf("not ready for connections after %s", c.ReadyTimeout))
	}
	if !s.JetStreamEnabled() {
		return fail(errors.New("jetstream not enabled"))
	}
	js := s.JetStreamConfig()
	if js == nil {
		return fail(errors.New("jetstream config unavailable"))
	}
	if js.SyncAlways != c.SyncAlways {
		return fail(fmt.Errorf("jetstream sync_always is %t, want %t", js.SyncAlways, c.SyncAlways))
	}
	if js.Domain != c.JetStreamDomain {
		return fail(fmt.Errorf("jetstream domain is %q, want %q", js.Domain, c.JetStreamDomain))
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

// ClusterURL returns the route URL of a clustered node, for the Routes of
// the others (nats-route://host:port).
func ClusterURL(s *server.Server) string {
	if a := s.ClusterAddr(); a != nil {
		return "nats-route://" + a.String()
	}
	return ""
}

// LeafURL returns the leaf-node URL of a hub node, for a region's
// LeafRemotes (nats-leaf://host:port), or "" if it has no leaf listener.
func LeafURL(s *server.Server) string {
	v, err := s.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	host := v.LeafNode.Host
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return "nats-leaf://" + net.JoinHostPort(host, strconv.Itoa(v.LeafNode.Port))
}

// WaitLeaf waits until s has at least n leaf connections, or ctx ends.
func WaitLeaf(ctx context.Context, s *server.Server, n int) error {
	for s.NumLeafNodes() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d leaf connections of %s (have %d): %w", n, s.Name(), s.NumLeafNodes(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Attach returns a Log over an existing stream without creating or
// changing it: a region reads (and, for forwarded tools, appends to) the
// hub's stream across its leaf connection with Config{Domain: HubDomain},
// and must never touch the hub's stream configuration. It retries until
// the stream answers or ctx ends (a region may start before its hub link is
// up).
func Attach(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	cfg = withDefaults(cfg)
	js, err := newJetStream(nc, cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("attach log: %w", err)
	}
	var stream jetstream.Stream
	op := func() error {
		sctx, cancel := context.WithTimeout(ctx, cfg.PublishTimeout)
		defer cancel()
		stream, err = js.Stream(sctx, cfg.Stream)
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 50*time.Millisecond, time.Second, 0
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return nil, fmt.Errorf("attach log: stream %s in domain %q: %w", cfg.Stream, cfg.Domain, err)
	}
	return &Log{cfg: cfg, js: js, stream: stream}, nil
}

// newJetStream is the JetStream API of the local domain, or of domain (the
// hub's, reached across a leaf connection).
func newJetStream(nc *nats.Conn, domain string) (jetstream.JetStream, error) {
	if domain != "" {
		return jetstream.NewWithDomain(nc, domain)
	}
	return jetstream.New(nc)
}

// withDefaults fills the zero fields of cfg as Open does.
func withDefaults(cfg Config) Config {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultDuplicates
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval = 20 * time.Millisecond
			b.MaxInterval = 500 * time.Millisecond
			b.MaxElapsedTime = 0
			return b
		}
	}
	return cfg
}

// OpenRetry is Open retried with backoff until it succeeds or ctx ends: a
// node of a clustered hub can create the stream only once its cluster has a
// JetStream meta leader, which takes a quorum of nodes.
func OpenRetry(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	var l *Log
	op := func() error {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		l, err = Open(octx, nc, cfg)
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, time.Second, 0
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return nil, err
	}
	return l, nil
}

// WatchStreamLeader calls lead(true) when the embedded server s becomes
// the leader of stream (in the global account), and lead(false) when it
// stops being it, checking every interval until ctx ends (then lead(false)
// if it was leading). A hub runs its writer's service only where the
// stream's leader is: appends then go to the local node, and the writers
// of the hub's processes do not take turns (each turn costs a conflict
// and a rebuild). A non-clustered server is always the leader.
func WatchStreamLeader(ctx context.Context, s *server.Server, stream string, interval time.Duration, lead func(bool)) {
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	leading := false
	for {
		now := !s.JetStreamIsClustered() || s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
		if now != leading {
			leading = now
			lead(now)
		}
		select {
		case <-ctx.Done():
			if leading {
				lead(false)
			}
			return
		case <-t.C:
		}
	}
}
