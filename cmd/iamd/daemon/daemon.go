package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
	"github.com/iam-project/iam/eventlog/logsign"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/natsnode/natspki"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/eventlog/writer"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// Main is the running process: start with Run, stop with Close. End-to-end
// tests run it with --http 127.0.0.1:0 and a temp data dir.
type Main struct {
	Config Config

	// Set by Run.
	Addr      string // the HTTP listener's address
	Issuer    string // the token issuer: Config.Issuer, or the listener's URL
	Bootstrap *writer.BootstrapAdmin

	logger     *slog.Logger
	metrics    *api.Metrics
	ns         *server.Server
	nc         *nats.Conn
	bus        *bus.Bus
	log        *eventlog.Log
	writer     *writer.Writer // nil in a region
	heartbeat  *eventlog.Heartbeater
	replicas   []*replica.Replica
	projectors []*projector.Projector
	// logSigner signs entries and snapshots (hub, all-in-one: nil in a
	// region); logVerifier checks them (every mode).
	logSigner   *logsign.Signer
	logVerifier *logsign.Verifier
	joined      map[string]replica.SnapshotHeader // the snapshot each region joined from
	publisher   *replica.Publisher
	idemSecret  []byte            // keys ids derived from Idempotency-Keys (hub)
	relay       *bus.WhileLeading // a hub's relay, served beside the stream's leader
	api         *api.Server
	http        *http.Server
	ln          net.Listener  // the HTTP listener, until served
	certs       *certReloader // with TLS
	cancel      context.CancelFunc
	wg          sync.WaitGroup // background goroutines of Main itself
	closeOnce   sync.Once
	closeErr    error
}

// NewMain returns a Main with the default config.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// Run starts everything and returns once the API is serving: the embedded
// NATS server of the mode, the log (with the writer on a hub), one replica
// and projector per region, the API, and the HTTP listener.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	c.Mode = cmp.Or(c.Mode, ModeAll)
	if err := c.Validate(); err != nil {
		return err
	}
	m.logger = cmp.Or(c.Logger, slog.Default())
	if err := privateDirs(c); err != nil {
		return err
	}
	// The listener comes first: without --issuer, its URL is the issuer.
	if err := m.listen(c); err != nil {
		return err
	}
	c.Issuer = m.Issuer
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.metrics = api.NewMetrics(c.served())

	var err error
	if m.ns, err = runNATS(c); err != nil {
		return err
	}
	if m.nc, err = natsnode.Connect(m.ns); err != nil {
		return err
	}
	m.bus = bus.New(m.nc)
	mode, err := m.openLog(ctx, runCtx, c)
	if err != nil {
		return err
	}
	if err := m.openReplicas(ctx, runCtx, c); err != nil {
		return err
	}
	m.api = api.New(m.apiConfig(c, mode))
	m.api.SetHealth(m.projectorHealth)
	if err := m.bus.Subscribe(bus.StatusSubjectPrefix+".*", func(_ string, data []byte) { m.api.ReceiveStatus(data) }); err != nil {
		return err
	}
	if m.writer != nil {
		m.serveRelay(runCtx)
		// Regions decrypt personal data with keys they ask the hub for.
		if _, err := keyvault.Serve(m.bus, &keyvault.Lazy{Log: m.log}); err != nil {
			return err
		}
	}
	m.api.Start(runCtx)
	if c.Mode == ModeHub && (c.SnapshotEvery > 0 || c.SnapshotInterval > 0) {
		if err := m.publisher.Start(runCtx); err != nil {
			return err
		}
	}
	m.serveHTTP()
	if m.writer != nil && c.Bootstrap {
		if m.Bootstrap, err = m.bootstrap(ctx); err != nil {
			return err
		}
	}
	m.logger.Info("iamd ready", "mode", c.Mode, "http", m.URL(), "issuer", m.Issuer, "nats", cmp.Or(m.Listeners().NATS, "none"), "data", c.DataDir,
		"regions", strings.Join(c.served(), ","))
	if c.AddrFile != "" {
		if err := m.writeAddrFile(c.AddrFile); err != nil {
			return fmt.Errorf("--addr-file: %w", err)
		}
	}
	return nil
}

// privateDirs makes the data directory and the secrets directory (made if
// missing) 0700, whatever mode they had, and the secrets in them 0600: the
// log, read models and keys are nobody else's to read.
func privateDirs(c Config) error {
	for _, dir := range []string{c.DataDir, c.secretsDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(c.secretsDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == logPublicKeysFile {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(filepath.Join(c.secretsDir(), e.Name()), info.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

// served lists the regions this process serves replicas of.
func (c Config) served() []string {
	if c.Mode == ModeRegion {
		return []string{c.Region}
	}
	return c.Regions
}

// openLog opens the log: a region attaches to the hub's stream across its
// leaf link and relays writes there; the all-in-one and the hub own the
// stream, its writer and heartbeats, and the secrets that sign tokens.
func (m *Main) openLog(ctx, runCtx context.Context, c Config) (api.Mode, error) {
	logCfg := eventlog.Config{OnRetry: func(cause string) { m.metrics.Retry("eventlog", cause) }}
	var err error
	if c.Mode == ModeRegion {
		// A region applies only what the hub signed, with the keys the
		// operator gave it.
		if m.logVerifier, err = logsign.LoadPublicKeys(c.LogKeys); err != nil {
			return nil, err
		}
		logCfg.Verifier = m.logVerifier
		hctx, cancel := context.WithTimeout(ctx, c.HubWait)
		defer cancel()
		logCfg.Domain = natsnode.HubDomain
		if m.log, err = eventlog.Attach(hctx, m.nc, logCfg); err != nil {
			return nil, err
		}
		return &api.Region{Relay: func(ctx context.Context, data []byte) ([]byte, error) {
			return m.bus.Request(ctx, bus.RPCSubject, data)
		}, JWKSMaxAge: c.JWKSMaxAge}, nil
	}
	if c.Mode == ModeHub {
		logCfg.Replicas = c.StreamReplicas
		if logCfg.Replicas <= 0 && c.ClusterListen != "" {
			logCfg.Replicas = 3
		}
	}
	// A clustered hub can create the stream once a quorum is up.
	if m.log, err = eventlog.OpenRetry(ctx, m.nc, logCfg); err != nil {
		return nil, err
	}
	// The hub signs every entry with the newest log key and, like every
	// reader, verifies with all of them. A key ring made now signs from the
	// entry after the head: a log written before signing existed stays
	// readable, and nothing can be slipped in below the head.
	head, err := m.log.HeadRetry(ctx)
	if err != nil {
		return nil, err
	}
	keys, secret, ring, err := loadSecrets(c.secretsDir(), head)
	if err != nil {
		return nil, err
	}
	if m.logVerifier, err = logsign.NewVerifier(ring.Public()); err != nil {
		return nil, err
	}
	m.logSigner = ring.Signer()
	if err := logsign.WritePublicKeys(m.LogPublicKeysFile(), ring.Public()); err != nil {
		return nil, err
	}
	m.log = m.log.WithSigning(m.logSigner, m.logVerifier)
	m.writer = writer.New(m.log, writer.Config{Logger: m.logger, OnRetry: func(cause string) { m.metrics.Retry("writer", cause) }})
	if err := m.writer.Start(ctx); err != nil {
		return nil, err
	}
	if c.HeartbeatInterval > 0 {
		m.heartbeat = &eventlog.Heartbeater{Log: m.log, Interval: c.HeartbeatInterval, Logger: m.logger}
		if err := m.heartbeat.Start(runCtx); err != nil {
			return nil, err
		}
	}
	m.idemSecret = secret
	return &api.Hub{Writer: m.writer, Keys: keys, KeyDir: c.secretsDir(),
		LatestFromReplica: c.Mode == ModeHub && c.ClusterListen != ""}, nil
}

func (c Config) secretsDir() string { return cmp.Or(c.SecretsDir, c.DataDir) }

// logKeysFile holds the log signing keys, sealed like the token signing
// keys; logPublicKeysFile their public halves, for regions (--log-keys).
const (
	logKeysFile       = "log-keys.sealed"
	logPublicKeysFile = "log-keys.pub.json"
)

// LogPublicKeysFile is the file of the hub's (or all-in-one's) log public
// keys, written at start in the secrets directory: the file to give
// regions as --log-keys.
func (m *Main) LogPublicKeysFile() string {
	return filepath.Join(m.Config.secretsDir(), logPublicKeysFile)
}

// openReplicas opens one replica per region served (a region with an empty
// read model joins from the hub's newest snapshot first) and starts its
// projector.
func (m *Main) openReplicas(ctx, runCtx context.Context, c Config) error {
	for _, region := range c.served() {
		rep, err := replica.Open(replica.Config{Region: region, Dir: filepath.Join(c.DataDir, "replicas", region), Head: m.log.Head,
			SnapshotVerifier: m.logVerifier, History: m.log.ReadRange, CheckpointEvery: c.CheckpointEvery,
			CheckpointMemory: c.CheckpointMemory, PersistAtClose: c.PersistAtClose, BulkCatchUp: c.BulkCatchUp})
		if err != nil {
			return err
		}
		m.replicas = append(m.replicas, rep)
		if c.Mode == ModeRegion && c.JoinFromSnapshot {
			h, ok, err := replica.Join(ctx, m.snapshotBucket, rep, m.logger)
			if err != nil {
				return err
			} else if ok {
				m.joined = map[string]replica.SnapshotHeader{region: h}
			}
		}
		p := projector.New(m.log, rep, region)
		p.Logger = m.logger
		p.OnRetry = func(cause string) { m.metrics.Retry("projector", cause) }
		p.OnRefused = func(reason string) { m.metrics.Refused(region, reason) }
		p.OnApplied = func(entries []iam.LogEntry, at time.Time) {
			for _, e := range entries {
				m.metrics.ObservePropagation(region, at.Sub(e.Time).Seconds())
			}
		}
		maxBackoff := c.ProjectorMaxBackoff
		if c.Mode == ModeRegion {
			// A region must be current soon after its hub link heals, and
			// notice a dead consumer soon: the leaf link is the usual cause.
			maxBackoff = cmp.Or(maxBackoff, 500*time.Millisecond)
			p.StallTimeout = 2 * time.Second
		}
		if maxBackoff > 0 {
			p.Backoff = func() backoff.BackOff {
				b := backoff.NewExponentialBackOff()
				b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = min(50*time.Millisecond, maxBackoff), maxBackoff, 0
				return b
			}
		}
		if err := p.Start(runCtx); err != nil {
			return err
		}
		m.projectors = append(m.projectors, p)
	}
	// The default region's read model is what this process snapshots: on
	// request (the API), and periodically on the hub, beside the stream's
	// leader.
	m.publisher = &replica.Publisher{Replica: m.replicas[0], Bucket: m.snapshotBucket, Every: c.SnapshotEvery,
		Interval: c.SnapshotInterval, Logger: m.logger,
		Leader: func() bool { return natsnode.StreamLeader(m.ns, m.log.StreamName()) }}
	if m.logSigner != nil { // a region has no signing key (nor a nil one in an interface)
		m.publisher.Signer = m.logSigner
	}
	return nil
}

// snapshotBucket opens the snapshot bucket beside the log.
func (m *Main) snapshotBucket(ctx context.Context, create bool) (replica.SnapshotBucket, error) {
	b, err := snapshots.Open(ctx, m.log, create)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (m *Main) apiConfig(c Config, mode api.Mode) api.Config {
	cfg := api.Config{Mode: mode, Issuer: c.Issuer, HashParams: c.HashParams, Logger: m.logger, Metrics: m.metrics,
		HeartbeatInterval: c.HeartbeatInterval, MaxLag: c.MaxLag,
		MaxConcurrentHashes: c.MaxConcurrentHashes, HashWait: c.HashWait,
		Log: m.log, Vault: &keyvault.Lazy{Log: m.log}, Snapshots: m.publisher, IdempotencySecret: m.idemSecret,
		PublishStatus: func(region string, data []byte) {
			_ = m.bus.Publish(bus.StatusSubjectPrefix+"."+region, data)
		}}
	if c.Mode != ModeRegion {
		cfg.DataDir = c.secretsDir() // the mail outbox
	} else {
		// A region may not read the vault's bucket (its leaf credential
		// does not allow it): it asks the hub for each key.
		cfg.Vault = &keyvault.Remote{Bus: m.bus}
	}
	for _, rep := range m.replicas {
		cfg.Replicas = append(cfg.Replicas, rep)
	}
	return cfg
}

// projectorHealth reports region's projector as api.HealthFunc.
func (m *Main) projectorHealth(region string) error {
	for i, p := range m.projectors {
		if m.replicas[i].Region() == region {
			if ok, err := p.Healthy(); !ok {
				return err
			}
		}
	}
	return nil
}

// serveRelay answers the writes regions relay, from the process beside the
// stream's leader (bus.WhileLeading); the writer resyncs each time this
// process becomes the leader.
func (m *Main) serveRelay(ctx context.Context) {
	m.relay = &bus.WhileLeading{Bus: m.bus, Subject: bus.RPCSubject, Queue: bus.RPCQueue, Handler: m.api.ServeForwarded,
		OnLead: m.writer.Resync, Logger: m.logger}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		natsnode.WatchStreamLeader(ctx, m.ns, m.log.StreamName(), 100*time.Millisecond, m.relay.Lead)
	}()
}

// listen opens the HTTP listener (TLS with --tls-cert, at most MaxConns
// connections at once) and fixes the issuer.
func (m *Main) listen(c Config) error {
	if c.TLSCert != "" {
		var err error
		if m.certs, err = newCertReloader(c.TLSCert, c.TLSKey); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return err
	}
	m.Addr = ln.Addr().String()
	m.Issuer = cmp.Or(c.Issuer, m.URL())
	ln = newLimitListener(ln, cmp.Or(c.MaxConns, DefaultMaxConns))
	if m.certs != nil {
		ln = tls.NewListener(ln, m.certs.tlsConfig())
	}
	m.ln = ln
	return nil
}

// URL is the base URL of the HTTP listener: https:// with TLS.
func (m *Main) URL() string {
	if m.Config.TLSCert != "" {
		return "https://" + m.Addr
	}
	return "http://" + m.Addr
}

// ReloadTLS reads --tls-cert and --tls-key again (cmd/iamd calls it on
// SIGHUP): new connections get the new certificate; on error the current
// one stays. Without TLS it does nothing.
func (m *Main) ReloadTLS() error {
	if m.certs == nil {
		return nil
	}
	return m.certs.Reload()
}

func (m *Main) serveHTTP() {
	h := m.api.Handler()
	if m.certs != nil {
		h = withHSTS(h)
	}
	m.http = &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout,
		ErrorLog: slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn)}
	m.http.RegisterOnShutdown(m.api.CloseStreams)
	ln := m.ln
	m.ln = nil
	go func() {
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.logger.Error("http serve", "err", err)
		}
	}()
}

// runNATS starts the embedded NATS server of the mode: a plain server for
// the all-in-one, a hub node (JetStream domain "hub", optionally clustered,
// with a leaf listener), or a region's leaf node in its own domain.
func runNATS(c Config) (*server.Server, error) {
	host, port := "127.0.0.1", -1
	if c.Mode != ModeAll && c.NATSListen != "" {
		h, p, err := net.SplitHostPort(c.NATSListen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", c.NATSListen, err)
		}
		host = h
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
		if c.NATSTLSDir != "" {
			sec, err := natspki.Hub(c.NATSTLSDir, sc.ServerName)
			if err != nil {
				return nil, fmt.Errorf("--nats-tls-dir: %w", err)
			}
			nc.Security = sec
		}
		return natsnode.RunNode(nc)
	default:
		sc.JetStreamDomain, sc.ServerName, sc.SyncAlways = c.Region, cmp.Or(c.NATSName, "iamd-"+c.Region), false
		nc := natsnode.NodeConfig{ServerConfig: sc, LeafRemotes: c.HubLeaf, LeafReconnect: c.LeafReconnect}
		if c.NATSTLSDir != "" {
			sec, err := natspki.Region(c.NATSTLSDir, c.Region)
			if err != nil {
				return nil, fmt.Errorf("--nats-tls-dir: %w", err)
			}
			nc.Security = sec
		}
		return natsnode.RunNode(nc)
	}
}

// bootstrapProofWait bounds how long bootstrap retries the proof of the
// admin's credentials that the token endpoint answers 503.
const bootstrapProofWait = 30 * time.Second

// bootstrap creates the first admin on an empty log (writer.Bootstrap),
// proves its credentials at the token endpoint, then writes them to
// DATA/bootstrap-admin.json (0600) and prints them once.
func (m *Main) bootstrap(ctx context.Context) (*writer.BootstrapAdmin, error) {
	admin, err := writer.Bootstrap(ctx, m.writer, m.Config.HashParams)
	if err != nil || admin == nil {
		return nil, err
	}
	admin.TokenURL = m.Issuer + "/oauth2/token"
	// Proven in process: the listener may serve a certificate this process
	// does not trust, or no name it can dial.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {admin.ClientID}, "client_secret": {admin.ClientSecret}}
	var rec *httptest.ResponseRecorder
	prove := func() error {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "127.0.0.1:0"
		rec = httptest.NewRecorder()
		m.api.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusServiceUnavailable {
			return errors.New(rec.Body.String())
		}
		return nil
	}
	// The endpoint answers 503, retry, while it cannot read the state at
	// the log's head (a replica still applying the bootstrap, a clustered
	// hub electing its stream's leader): so retry, for a while.
	_ = backoff.Retry(prove, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(bootstrapProofWait)), ctx))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("bootstrap: the admin's credentials were refused (%d %s)", rec.Code, strings.TrimSpace(rec.Body.String()))
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
	if m.ln != nil { // opened, not served
		m.ln.Close()
	}
	if m.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.http.Shutdown(sctx))
		cancel()
	}
	if m.cancel != nil {
		m.cancel() // ends the background loops: leader watch, heartbeats, lag, snapshots
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
	if m.publisher != nil {
		m.publisher.Stop()
	}
	for _, p := range m.projectors {
		p.Stop()
	}
	if m.writer != nil {
		m.writer.Stop()
	}
	// At once: each may spend PersistAtClose writing checkpoint files,
	// and the process's shutdown should take that once, not per region.
	closed := make([]error, len(m.replicas))
	var replicas sync.WaitGroup
	for i, r := range m.replicas {
		replicas.Go(func() { closed[i] = r.Close() })
	}
	replicas.Wait()
	errs = append(errs, closed...)
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
// kept in dir and the idempotency secret. Every hub node must load the
// same ones: tokens signed by one are verified by the others and by the
// regions, and ids derived from Idempotency-Keys must not depend on which
// node served a retry.
//
// It also returns the log signing keys (made on first start, signing from
// the entry after head, the log's head then), which every hub node must
// share too: entries signed by any of them are verified by the same public
// keys.
func loadSecrets(dir string, head uint64) (*auth.KeySet, []byte, *logsign.Ring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, err
	}
	secret, err := auth.LoadSecret(filepath.Join(dir, "idempotency.key"))
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := auth.LoadSigningKeys(dir, time.Now(), 0)
	if err != nil {
		return nil, nil, nil, err
	}
	plain, err := auth.LoadSealed(dir, logKeysFile, func() ([]byte, error) {
		r := logsign.Ring{SignedFrom: head + 1}
		if err := r.Rotate(time.Now()); err != nil {
			return nil, err
		}
		return r.Marshal()
	})
	if err != nil {
		return nil, nil, nil, err
	}
	ring, err := logsign.UnmarshalRing(plain)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(ring.Keys) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no log signing key", logKeysFile)
	}
	return keys, secret, ring, nil
}

// RotateLogKey adds a new log signing key to the secrets directory dir and
// rewrites its public-key file with every key, old and new; it returns the
// new key's id. Give the regions the new public-key file first, then
// restart the hub nodes: they sign with the newest key, and the regions
// still verify older entries and snapshots with the older keys.
func RotateLogKey(dir string) (string, error) {
	_, _, ring, err := loadSecrets(dir, 0)
	if err != nil {
		return "", err
	}
	if err := ring.Rotate(time.Now()); err != nil {
		return "", err
	}
	plain, err := ring.Marshal()
	if err != nil {
		return "", err
	}
	if err := auth.SaveSealed(dir, logKeysFile, plain); err != nil {
		return "", err
	}
	if err := logsign.WritePublicKeys(filepath.Join(dir, logPublicKeysFile), ring.Public()); err != nil {
		return "", err
	}
	return ring.Signer().Kid(), nil
}
