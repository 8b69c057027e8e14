// Package natsnode runs the embedded NATS servers of iam's topologies and
// connects to them: the all-in-one's stand-alone JetStream server, the hub's
// cluster nodes (JetStream domain "hub", route and leaf-node listeners), a
// region's leaf node in its own domain, and the stream-leadership watch that
// tells a hub process whether it leads the log. The event log itself is
// package eventlog; this package only starts and joins servers.
package natsnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
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
	// Defaults to 30s: a node started under the race detector on two busy
	// cores once took more than 10 s (CI, the hub of hub-node-failover).
	// It only bounds a failure; a node that listens returns at once.
	ReadyTimeout time.Duration
}

// RunServer starts a stand-alone embedded nats-server with JetStream (see
// RunNode): the all-in-one's server and the tests'.
func RunServer(cfg ServerConfig) (*server.Server, error) {
	return RunNode(NodeConfig{ServerConfig: cfg})
}

// Connect connects to an embedded server (see ConnectURL). To a node
// started with Security it connects in process, with the nkey RunNode made
// for this process (the only credential its in-process user has), and in a
// region with the region's InboxPrefix, the only replies the hub delivers.
func Connect(s *server.Server, opts ...nats.Option) (*nats.Conn, error) {
	if p, ok := lookupSecure(s); ok {
		return connectInProcess(s, p, opts...)
	}
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

	// Security, when set, starts the node in secure mode (see Security):
	// a hub node (no LeafRemotes) or a region (LeafRemotes, named by
	// JetStreamDomain). Its processes then connect with Connect, in
	// process only. Nil keeps the plaintext, unauthenticated node of
	// tests and local runs.
	Security *Security
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
		c.ReadyTimeout = 30 * time.Second
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
	var self *inProcess
	if sec := cfg.Security; sec != nil {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("run nats node: in-process nkey: %w", err)
		}
		self = &inProcess{kp: kp}
		if len(cfg.LeafRemotes) > 0 {
			if c.JetStreamDomain == "" {
				return nil, errors.New("run nats node: a secure region needs JetStreamDomain, its region name")
			}
			self.inbox = InboxPrefix(c.JetStreamDomain)
			err = secureRegion(opts, sec, kp)
		} else {
			err = secureHub(opts, sec, kp)
		}
		if err != nil {
			return nil, fmt.Errorf("run nats node %s: %w", c.ServerName, err)
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
	if self != nil {
		if err := saveSecure(s, self); err != nil {
			return fail(fmt.Errorf("in-process identity: %w", err))
		}
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
		now := StreamLeader(s, stream)
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

// StreamLeader reports whether the embedded server s leads stream (in the
// global account, or Account on a secure node), or is not clustered: the one process of a hub that
// serves relayed writes and writes periodic snapshots.
func StreamLeader(s *server.Server, stream string) bool {
	return !s.JetStreamIsClustered() || s.JetStreamIsStreamLeader(accountOf(s), stream)
}
