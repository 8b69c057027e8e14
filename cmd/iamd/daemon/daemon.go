// Package daemon is iamd's wiring as a library, so that the command, the
// end-to-end tests, iamsim and iamload start the very same process.
//
// With no flags it is the all-in-one: an embedded
// NATS JetStream server holding the log under ./data, one writer, one
// replica per region, and the HTTP API on 127.0.0.1:8080.
//
// `iamd hub ...` runs one node of the hub (a NATS JetStream cluster node
// holding the stream, with a leaf-node listener for regions, plus a writer
// and the API that regions forward writes to); `iamd region --region NAME
// --hub-leaf URL ...` runs a region (a NATS leaf node, a replica following
// the hub's stream across the leaf link, and the API answering reads from
// that replica). See docs/multi-region.md and docs/deploy/.
package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/bus"
	"github.com/iam-project/iam/eventlog/keyvault"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/writer"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// Modes of iamd.
const (
	ModeAll    = "all" // all-in-one (default)
	ModeHub    = "hub"
	ModeRegion = "region"
)

// Config is iamd's configuration.
type Config struct {
	// Mode is ModeAll, ModeHub or ModeRegion (the first argument).
	Mode       string
	HTTPAddr   string
	DataDir    string
	Regions    []string
	Issuer     string
	SyncAlways bool

	// SecretsDir holds the token signing keys and the idempotency secret
	// (default: DataDir). Every hub node must have the same ones.
	SecretsDir string
	// Bootstrap creates the first realm and admin on an empty log. Start
	// one hub node with it, not all of them. Default true.
	Bootstrap bool
	// HeartbeatInterval: the hub (and the all-in-one) appends a heartbeat
	// when the log has been idle this long. 0 disables. Default 1s.
	HeartbeatInterval time.Duration
	// MaxLag marks a region not ready when it lags more. 0 disables.
	MaxLag time.Duration

	// Hub and region: the embedded NATS server.
	NATSName   string // server name (default: iamd, the hub node or region name)
	NATSListen string // client listener host:port (default 127.0.0.1, random port)

	// Hub.
	ClusterName    string   // JetStream cluster name (default "iam-hub")
	ClusterListen  string   // route listener host:port; empty: a single hub node
	Routes         []string // nats-route://host:port of every cluster node
	LeafListen     string   // leaf listener host:port for the regions
	StreamReplicas int      // replicas of the stream (default: 3 when clustered, else 1)

	// Region.
	Region        string        // the region this process serves
	HubLeaf       []string      // the hub's leaf URLs, nats-leaf://host:port
	LeafReconnect time.Duration // redial interval of the hub link (default 250ms)
	// ProjectorMaxBackoff caps the projector's retry interval, so that a
	// region is current soon after its hub link heals. Default 500ms in a
	// region, 2s otherwise.
	ProjectorMaxBackoff time.Duration
	// HubWait bounds how long a region waits at start for the hub's stream.
	HubWait time.Duration
	// JoinFromSnapshot: a region whose read model is empty loads the
	// hub's newest snapshot and follows the log from there (join.go).
	// Default true.
	JoinFromSnapshot bool
	// SnapshotEvery and SnapshotInterval: the hub publishes a snapshot
	// once this many entries were applied since the last, or this long
	// after it. Both 0: never (POST /v1/replicas/snapshot still does).
	// Defaults 100000 and 1h.
	SnapshotEvery    uint64
	SnapshotInterval time.Duration

	// HashParams for new secrets; tests use cheap ones.
	HashParams auth.HashParams
	Logger     *slog.Logger
	// Stderr receives the one-time bootstrap message. Default os.Stderr.
	Stderr io.Writer
}

// DefaultConfig is the all-in-one on embedded defaults.
func DefaultConfig() Config {
	return Config{
		Mode:              ModeAll,
		HTTPAddr:          "127.0.0.1:8080",
		DataDir:           "data",
		Regions:           []string{"eu-west", "us-east", "ap-south"},
		SyncAlways:        true,
		HashParams:        auth.DefaultHashParams(),
		Bootstrap:         true,
		HeartbeatInterval: eventlog.DefaultHeartbeatInterval,
		MaxLag:            30 * time.Second,
		NATSListen:        "127.0.0.1:-1",
		ClusterName:       "iam-hub",
		LeafReconnect:     natsnode.DefaultLeafReconnect,
		HubWait:           time.Minute,
		JoinFromSnapshot:  true,
		SnapshotEvery:     replica.DefaultSnapshotEvery,
		SnapshotInterval:  replica.DefaultSnapshotInterval,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data must not be empty")
	}
	switch c.Mode {
	case ModeAll, ModeHub:
	case ModeRegion:
		if err := iam.ValidID("region", c.Region); err != nil {
			return fmt.Errorf("--region %q is not a region name", c.Region)
		}
		if len(c.HubLeaf) == 0 {
			return errors.New("--hub-leaf is required in region mode")
		}
		if c.Issuer == "" {
			return errors.New("--issuer is required in region mode: tokens are signed by the hub and must carry the same issuer in every region")
		}
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("--http %q: %w", c.HTTPAddr, err)
		}
		return nil
	default:
		return fmt.Errorf("mode %q is not one of all, hub, region", c.Mode)
	}
	if c.Mode == ModeHub {
		if c.Issuer == "" {
			return errors.New("--issuer is required in hub mode: regions verify the hub's tokens against it")
		}
		if c.LeafListen == "" {
			return errors.New("--leaf-listen is required in hub mode")
		}
		if c.ClusterListen != "" && len(c.Routes) == 0 {
			return errors.New("--routes must list the cluster's nodes when --cluster is set")
		}
	}
	if len(c.Regions) == 0 {
		return errors.New("--regions needs at least one region")
	}
	seen := map[string]bool{}
	for _, r := range c.Regions {
		if err := iam.ValidID("regions", r); err != nil || seen[r] {
			return fmt.Errorf("--regions: %q is not a region name, or repeated", r)
		}
		seen[r] = true
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http %q: %w", c.HTTPAddr, err)
	}
	return nil
}

// Main is the running process: start with Run, stop with Close. End-to-end
// tests run it with --http 127.0.0.1:0 and a temp data dir.
type Main struct {
	Config Config

	// Set by Run.
	Addr      string // the HTTP listener's address
	Bootstrap *writer.BootstrapAdmin

	ns         *server.Server
	nc         *nats.Conn
	bus        *bus.Bus
	log        *eventlog.Log
	writer     *writer.Writer
	heartbeat  *eventlog.Heartbeater
	replicas   []*replica.Replica
	projectors []*projector.Projector
	api        *api.Server
	http       *http.Server
	cancel     context.CancelFunc
	wg         sync.WaitGroup // background goroutines of Main itself
	closeOnce  sync.Once
	closeErr   error
	join       joinState // join.go
}

// NewMain returns a Main with the default config.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// ParseFlags reads the command line into m.Config: an optional mode
// (hub, region) then flags.
func (m *Main) ParseFlags(args []string) error {
	c := &m.Config
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case ModeHub, ModeRegion, ModeAll:
			c.Mode = args[0]
		default:
			return fmt.Errorf("unknown mode %q: use iamd [hub|region] [flags]", args[0])
		}
		args = args[1:]
	}
	fs := flag.NewFlagSet("iamd "+c.Mode, flag.ContinueOnError)
	if c.Mode == ModeHub {
		c.Regions = []string{"hub"}
	}
	regions := strings.Join(c.Regions, ",")
	var routes, hubLeaf string
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen address (127.0.0.1:0 picks a free port)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (log, read models, keys)")
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "token issuer URL (default: the URL requests arrive on; required for hub and region)")
	fs.DurationVar(&c.MaxLag, "max-lag", c.MaxLag, "a region lagging more is not ready (0: no threshold)")
	if c.Mode != ModeRegion {
		fs.StringVar(&regions, "regions", regions, "comma-separated regions served by in-process replicas")
		fs.BoolVar(&c.SyncAlways, "fsync", c.SyncAlways, "fsync the log on every write")
		fs.StringVar(&c.SecretsDir, "secrets", c.SecretsDir, "directory of the signing keys and idempotency secret (default: --data); the same on every hub node")
		fs.BoolVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "create the first realm and admin on an empty log (one hub node only)")
		fs.DurationVar(&c.HeartbeatInterval, "heartbeat", c.HeartbeatInterval, "append a heartbeat when the log was idle this long (0: never)")
	}
	if c.Mode != ModeAll {
		fs.StringVar(&c.NATSName, "nats-name", c.NATSName, "name of the embedded NATS server")
		fs.StringVar(&c.NATSListen, "nats-listen", c.NATSListen, "NATS client listener host:port (port -1: random)")
	}
	if c.Mode == ModeHub {
		fs.StringVar(&c.ClusterName, "cluster-name", c.ClusterName, "JetStream cluster name")
		fs.StringVar(&c.ClusterListen, "cluster", c.ClusterListen, "cluster route listener host:port (empty: a single hub node)")
		fs.StringVar(&routes, "routes", "", "comma-separated nats-route://host:port of every hub node")
		fs.StringVar(&c.LeafListen, "leaf-listen", c.LeafListen, "leaf-node listener host:port for the regions")
		fs.IntVar(&c.StreamReplicas, "replicas", c.StreamReplicas, "stream replicas (default: 3 when clustered, else 1)")
		fs.Uint64Var(&c.SnapshotEvery, "snapshot-every", c.SnapshotEvery, "publish a read-model snapshot after this many entries (0 and --snapshot-interval 0: never)")
		fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "publish a read-model snapshot at least this often while the log moves")
	}
	if c.Mode == ModeRegion {
		fs.StringVar(&c.Region, "region", c.Region, "the region this process serves")
		fs.StringVar(&hubLeaf, "hub-leaf", "", "comma-separated leaf URLs of the hub nodes, nats-leaf://host:port")
		fs.DurationVar(&c.HubWait, "hub-wait", c.HubWait, "how long to wait at start for the hub's stream")
		fs.BoolVar(&c.JoinFromSnapshot, "join-snapshot", c.JoinFromSnapshot, "start an empty read model from the hub's newest snapshot instead of replaying the log")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Regions = splitList(regions)
	c.Routes = splitList(routes)
	c.HubLeaf = splitList(hubLeaf)
	return c.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// Run starts everything and returns once the API is serving.
func (m *Main) Run(ctx context.Context) (err error) {
	c := m.Config
	if c.Mode == "" {
		c.Mode = ModeAll
	}
	if err := c.Validate(); err != nil {
		return err
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel

	var regions []string
	if c.Mode == ModeRegion {
		regions = []string{c.Region}
	} else {
		regions = c.Regions
	}
	metrics := api.NewMetrics(regions)
	if m.ns, err = m.runNATS(c); err != nil {
		return err
	}
	if m.nc, err = natsnode.Connect(m.ns); err != nil {
		return err
	}
	m.bus = bus.New(m.nc)
	logCfg := eventlog.Config{OnRetry: func(cause string) { metrics.Retry("eventlog", cause) }}

	apiCfg := api.Config{Issuer: c.Issuer, HashParams: c.HashParams, Logger: logger, Metrics: metrics,
		HeartbeatInterval: c.HeartbeatInterval, MaxLag: c.MaxLag,
		PublishStatus: func(region string, data []byte) {
			_ = m.bus.Publish(bus.StatusSubjectPrefix+"."+region, data)
		}}
	if c.Mode == ModeRegion {
		// A region follows the hub's stream directly across its leaf link.
		hctx, cancel := context.WithTimeout(ctx, c.HubWait)
		logCfg.Domain = natsnode.HubDomain
		m.log, err = eventlog.Attach(hctx, m.nc, logCfg)
		cancel()
		if err != nil {
			return err
		}
		apiCfg.Mode = &api.Region{Relay: func(ctx context.Context, data []byte) ([]byte, error) {
			return m.bus.Request(ctx, bus.RPCSubject, data)
		}}
		if apiCfg.HeartbeatInterval <= 0 {
			apiCfg.HeartbeatInterval = eventlog.DefaultHeartbeatInterval
		}
	} else {
		if c.Mode == ModeHub {
			logCfg.Replicas = c.StreamReplicas
			if logCfg.Replicas <= 0 && c.ClusterListen != "" {
				logCfg.Replicas = 3
			}
		}
		// A clustered hub can create the stream once a quorum is up.
		if m.log, err = eventlog.OpenRetry(ctx, m.nc, logCfg); err != nil {
			return err
		}
		m.writer = writer.New(m.log, writer.Config{Logger: logger, OnRetry: func(cause string) { metrics.Retry("writer", cause) }})
		if err := m.writer.Start(ctx); err != nil {
			return err
		}
		if c.HeartbeatInterval > 0 {
			m.heartbeat = &eventlog.Heartbeater{Log: m.log, Interval: c.HeartbeatInterval, Logger: logger}
			if err := m.heartbeat.Start(runCtx); err != nil {
				return err
			}
		}
		secrets := cmp.Or(c.SecretsDir, c.DataDir)
		apiCfg.DataDir = secrets // mail outbox
		keys, secret, err := loadSecrets(secrets)
		if err != nil {
			return err
		}
		apiCfg.IdempotencySecret = secret
		apiCfg.Mode = &api.Hub{Writer: m.writer, Keys: keys, KeyDir: secrets, // sealed signing keys (auth.KeyFile)
			LatestFromReplica: c.Mode == ModeHub && c.ClusterListen != ""}
	}
	for _, region := range regions {
		rep, err := replica.Open(replica.Config{Region: region, Dir: filepath.Join(c.DataDir, "replicas", region), Head: m.log.Head})
		if err != nil {
			return err
		}
		m.replicas = append(m.replicas, rep)
		if c.Mode == ModeRegion && c.JoinFromSnapshot {
			if err := m.join.fromSnapshot(ctx, m.log, rep, logger); err != nil {
				return err
			}
		}
		p := projector.New(m.log, rep, region)
		p.Logger = logger
		p.OnRetry = func(cause string) { metrics.Retry("projector", cause) }
		p.OnApplied = func(entries []iam.LogEntry, at time.Time) {
			for _, e := range entries {
				metrics.ObservePropagation(region, at.Sub(e.Time).Seconds())
			}
		}
		maxBackoff := c.ProjectorMaxBackoff
		if maxBackoff <= 0 && c.Mode == ModeRegion {
			maxBackoff = 500 * time.Millisecond
		}
		if maxBackoff > 0 {
			p.Backoff = func() backoff.BackOff {
				b := backoff.NewExponentialBackOff()
				b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = min(50*time.Millisecond, maxBackoff), maxBackoff, 0
				return b
			}
		}
		if c.Mode == ModeRegion {
			// Notice a dead consumer soon: the leaf link is the usual
			// cause, and the region must catch up as soon as it heals.
			p.StallTimeout = 2 * time.Second
		}
		if err := p.Start(runCtx); err != nil {
			return err
		}
		m.projectors = append(m.projectors, p)
	}
	apiCfg.Snapshots = m.join.newPublisher(m, m.replicas[0], logger)
	apiCfg.Log, apiCfg.Vault = m.log, &keyvault.Lazy{Log: m.log}
	for _, rep := range m.replicas {
		apiCfg.Replicas = append(apiCfg.Replicas, rep)
	}
	m.api = api.New(apiCfg)
	m.api.SetHealth(func(region string) error {
		for i, p := range m.projectors {
			if m.replicas[i].Region() == region {
				if ok, err := p.Healthy(); !ok {
					return err
				}
			}
		}
		return nil
	})
	if err := m.bus.Subscribe(bus.StatusSubjectPrefix+".*", func(_ string, data []byte) { m.api.ReceiveStatus(data) }); err != nil {
		return err
	}
	if m.writer != nil {
		// The hub answers the writes regions forward, from the process
		// beside the stream's leader.
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			var stop func()
			natsnode.WatchStreamLeader(runCtx, m.ns, m.log.StreamName(), 100*time.Millisecond, func(lead bool) {
				if !lead {
					if stop != nil {
						stop()
						stop = nil
					}
					return
				}
				m.writer.Resync() // others may have written while this process followed
				var err error
				if stop, err = m.bus.Serve(bus.RPCSubject, bus.RPCQueue, m.api.ServeForwarded); err != nil {
					logger.Error("serve forwarded requests", "err", err)
				} else {
					logger.Info("serving forwarded requests", "stream", m.log.StreamName())
				}
			})
		}()
	}
	m.api.Start(runCtx)
	if c.Mode == ModeHub {
		if err := m.join.startSnapshots(runCtx, m); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return err
	}
	m.Addr = ln.Addr().String()
	m.http = &http.Server{Handler: m.api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	m.http.RegisterOnShutdown(m.api.CloseStreams)
	go func() {
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http serve", "err", err)
		}
	}()

	if m.writer != nil && c.Bootstrap {
		if m.Bootstrap, err = m.bootstrap(ctx, logger); err != nil {
			return err
		}
	}
	logger.Info("iamd ready", "mode", c.Mode, "http", "http://"+m.Addr, "nats", m.ns.ClientURL(), "data", c.DataDir, "regions", strings.Join(regions, ","))
	return nil
}

// runNATS starts the embedded NATS server of the mode: a plain server for
// the all-in-one, a hub node (JetStream domain "hub", optionally clustered,
// with a leaf listener), or a region's leaf node in its own domain.
func (m *Main) runNATS(c Config) (*server.Server, error) {
	host, port := "127.0.0.1", -1
	if c.Mode != ModeAll && c.NATSListen != "" {
		h, p, err := net.SplitHostPort(c.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err)
		}
		pn, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err)
		}
		host, port = h, pn
	}
	sc := natsnode.ServerConfig{StoreDir: filepath.Join(c.DataDir, "nats"), Host: host, Port: port, SyncAlways: c.SyncAlways, ServerName: "iamd"}
	switch c.Mode {
	case ModeAll:
		return natsnode.RunServer(sc)
	case ModeHub:
		sc.JetStreamDomain, sc.ServerName = natsnode.HubDomain, cmp.Or(c.NATSName, "iamd-hub")
		nc := natsnode.NodeConfig{ServerConfig: sc, LeafListen: c.LeafListen}
		if c.ClusterListen != "" {
			nc.ClusterName, nc.ClusterListen, nc.Routes = c.ClusterName, c.ClusterListen, c.Routes
		}
		return natsnode.RunNode(nc)
	default:
		sc.JetStreamDomain, sc.ServerName, sc.SyncAlways = c.Region, cmp.Or(c.NATSName, "iamd-"+c.Region), false
		return natsnode.RunNode(natsnode.NodeConfig{ServerConfig: sc, LeafRemotes: c.HubLeaf, LeafReconnect: c.LeafReconnect})
	}
}

// bootstrap creates the first admin on an empty log, proves its credentials
// at the token endpoint, then writes them to DATA/bootstrap-admin.json.
func (m *Main) bootstrap(ctx context.Context, logger *slog.Logger) (*writer.BootstrapAdmin, error) {
	admin, err := writer.Bootstrap(ctx, m.writer, m.Config.HashParams)
	if err != nil || admin == nil {
		return nil, err
	}
	base := m.Config.Issuer
	if base == "" {
		base = "http://" + m.Addr
	}
	admin.TokenURL = base + "/oauth2/token"
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {admin.ClientID}, "client_secret": {admin.ClientSecret}}
	resp, err := http.PostForm("http://"+m.Addr+"/oauth2/token", form)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: prove credentials: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bootstrap: the admin's credentials were refused (%s)", resp.Status)
	}
	data, _ := json.MarshalIndent(admin, "", "  ")
	path := filepath.Join(m.Config.DataDir, "bootstrap-admin.json")
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	// Printed once, for the person starting it; never logged.
	out := m.Config.Stderr
	if out == nil {
		out = os.Stderr
	}
	fmt.Fprintf(out, "\nBootstrap admin for realm %s (also in %s):\n  client id:     %s\n  client secret: %s\n\n",
		admin.Realm, path, admin.ClientID, admin.ClientSecret)
	return admin, nil
}

// Close stops everything in reverse order; acknowledged writes are already
// in the log. Calls after the first return the first's result.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	var errs []error
	if m.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.http.Shutdown(sctx))
		cancel()
	}
	if m.cancel != nil {
		m.cancel() // ends Main's own goroutines (the leader watch) first
	}
	m.wg.Wait()
	if m.bus != nil {
		m.bus.Close()
	}
	if m.api != nil {
		m.api.Stop()
	}
	if m.heartbeat != nil {
		m.heartbeat.Stop()
	}
	m.join.stop()
	for _, p := range m.projectors {
		p.Stop()
	}
	if m.writer != nil {
		m.writer.Stop()
	}
	for _, r := range m.replicas {
		errs = append(errs, r.Close())
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.nc != nil {
		m.nc.Close()
	}
	if m.ns != nil {
		m.ns.Shutdown()
		m.ns.WaitForShutdown()
	}
	return errors.Join(errs...)
}

// loadSecrets reads (making them on first start) the token signing keys
// and the idempotency secret kept in dir. Every hub node must load the
// same ones: tokens signed by one are verified by the others and by the
// regions, and ids derived from Idempotency-Keys must not depend on which
// node served a retry.
func loadSecrets(dir string) (*auth.KeySet, []byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	keys, err := auth.LoadSigningKeys(dir, time.Now(), 0)
	if err != nil {
		return nil, nil, err
	}
	secret, err := loadSecret(filepath.Join(dir, "idempotency.key"))
	if err != nil {
		return nil, nil, err
	}
	return keys, secret, nil
}

// loadSecret reads a 32-byte secret, making it on first start.
func loadSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil && len(data) == 32 {
		return data, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	data = make([]byte, 32)
	_, _ = rand.Read(data)
	return data, os.WriteFile(path, data, 0o600)
}
