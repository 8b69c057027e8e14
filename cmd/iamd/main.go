// Command iamd runs iam. With no flags it is the all-in-one: an embedded
// NATS JetStream server holding the log under ./data, one writer, one
// replica per region, and the HTTP API on 127.0.0.1:8080.
package main

import (
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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		slog.Error("iamd failed", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		slog.Error("iamd stop", "err", err)
		os.Exit(1)
	}
}

// Config is iamd's configuration.
type Config struct {
	HTTPAddr   string
	DataDir    string
	Regions    []string
	Issuer     string
	SyncAlways bool
	// HashParams for new secrets; tests use cheap ones.
	HashParams auth.HashParams
	Logger     *slog.Logger
	// Stderr receives the one-time bootstrap message. Default os.Stderr.
	Stderr io.Writer
}

// DefaultConfig is the all-in-one on embedded defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:   "127.0.0.1:8080",
		DataDir:    "data",
		Regions:    []string{"eu-west", "us-east", "ap-south"},
		SyncAlways: true,
		HashParams: auth.DefaultHashParams(),
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data must not be empty")
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
	Bootstrap *api.BootstrapAdmin

	ns         *server.Server
	nc         *nats.Conn
	log        *eventlog.Log
	writer     *eventlog.Writer
	replicas   []*replica.Replica
	projectors []*projector.Projector
	api        *api.Server
	http       *http.Server
	cancel     context.CancelFunc
}

// NewMain returns a Main with the default config.
func NewMain() *Main { return &Main{Config: DefaultConfig()} }

// ParseFlags reads the command line into m.Config.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("iamd", flag.ContinueOnError)
	c := &m.Config
	regions := strings.Join(c.Regions, ",")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen address (127.0.0.1:0 picks a free port)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (log, read models, keys)")
	fs.StringVar(&regions, "regions", regions, "comma-separated regions served by in-process replicas")
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "token issuer URL (default: the URL requests arrive on)")
	fs.BoolVar(&c.SyncAlways, "fsync", c.SyncAlways, "fsync the log on every write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Regions = nil
	for _, r := range strings.Split(regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.Regions = append(c.Regions, r)
		}
	}
	return c.Validate()
}

// Run starts everything and returns once the API is serving.
func (m *Main) Run(ctx context.Context) (err error) {
	c := m.Config
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

	m.ns, err = eventlog.RunServer(eventlog.ServerConfig{StoreDir: filepath.Join(c.DataDir, "nats"), Port: -1, SyncAlways: c.SyncAlways, ServerName: "iamd"})
	if err != nil {
		return err
	}
	if m.nc, err = eventlog.Connect(m.ns); err != nil {
		return err
	}
	metrics := api.NewMetrics(c.Regions)
	if m.log, err = eventlog.Open(ctx, m.nc, eventlog.Config{OnRetry: func(cause string) { metrics.Retry("eventlog", cause) }}); err != nil {
		return err
	}
	m.writer = eventlog.NewWriter(m.log, eventlog.WriterConfig{Logger: logger, OnRetry: func(cause string) { metrics.Retry("writer", cause) }})
	if err := m.writer.Start(ctx); err != nil {
		return err
	}
	for _, region := range c.Regions {
		rep, err := replica.Open(replica.Config{Region: region, Dir: filepath.Join(c.DataDir, "replicas", region), Head: m.log.Head})
		if err != nil {
			return err
		}
		m.replicas = append(m.replicas, rep)
		p := projector.New(m.log, rep, region)
		p.Logger = logger
		p.OnRetry = func(cause string) { metrics.Retry("projector", cause) }
		p.OnApplied = func(entries []iam.LogEntry, at time.Time) {
			for _, e := range entries {
				metrics.ObservePropagation(region, at.Sub(e.Time).Seconds())
			}
		}
		if err := p.Start(runCtx); err != nil {
			return err
		}
		m.projectors = append(m.projectors, p)
	}
	keys, err := loadKeys(filepath.Join(c.DataDir, "signing-keys.json"))
	if err != nil {
		return err
	}
	idemSecret, err := loadSecret(filepath.Join(c.DataDir, "idempotency.key"))
	if err != nil {
		return err
	}
	m.api = api.New(api.Config{Issuer: c.Issuer, HashParams: c.HashParams, IdempotencySecret: idemSecret, Logger: logger},
		m.writer, m.log, m.replicas, keys, metrics)
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
	m.api.Start(runCtx)

	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return err
	}
	m.Addr = ln.Addr().String()
	m.http = &http.Server{Handler: m.api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http serve", "err", err)
		}
	}()

	if m.Bootstrap, err = m.bootstrap(ctx, logger); err != nil {
		return err
	}
	logger.Info("iamd ready", "http", "http://"+m.Addr, "data", c.DataDir, "regions", strings.Join(c.Regions, ","))
	return nil
}

// bootstrap creates the first admin on an empty log, proves its credentials
// at the token endpoint, then writes them to DATA/bootstrap-admin.json.
func (m *Main) bootstrap(ctx context.Context, logger *slog.Logger) (*api.BootstrapAdmin, error) {
	admin, err := api.Bootstrap(ctx, m.writer, m.Config.HashParams)
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
// in the log.
func (m *Main) Close() error {
	var errs []error
	if m.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.http.Shutdown(sctx))
		cancel()
	}
	if m.api != nil {
		m.api.Stop()
	}
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

// loadKeys reads the token signing keys, making the first on first start.
// They live in a 0600 file beside the log, never in it.
func loadKeys(path string) (*auth.KeySet, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return auth.UnmarshalKeySet(data)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ks := auth.NewKeySet()
	if err := ks.Rotate(time.Now(), 24*time.Hour); err != nil {
		return nil, err
	}
	data, err = auth.MarshalKeySet(ks)
	if err != nil {
		return nil, err
	}
	return ks, os.WriteFile(path, data, 0o600)
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
