package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// StackConfig configures an in-process iam stack.
type StackConfig struct {
	// Dir holds the log and the read models; it must be empty or absent.
	Dir string
	// Regions served by in-process replicas. Default eu-west.
	Regions []string
	// SyncAlways fsyncs the log on every write, as iamd does by default.
	SyncAlways bool
	// HashParams for secrets. Default auth.LowCostHashParams (only setup
	// writes hash anything).
	HashParams auth.HashParams
	Logger     *slog.Logger
}

// Stack is the all-in-one iam on loopback, wired as cmd/iamd wires it:
// embedded NATS JetStream, one writer, one replica and projector per region,
// the API on 127.0.0.1:0, and a bootstrap admin.
type Stack struct {
	// URL is the API's base URL.
	URL string
	// Admin holds the bootstrap admin's credentials.
	Admin *api.BootstrapAdmin

	ns         *server.Server
	nc         *nats.Conn
	writer     *eventlog.Writer
	replicas   []*replica.Replica
	projectors []*projector.Projector
	api        *api.Server
	http       *http.Server
	cancel     context.CancelFunc
}

// StartStack starts a stack and returns once its API serves and its admin
// exists. Close it when done, also after an error.
func StartStack(ctx context.Context, cfg StackConfig) (s *Stack, err error) {
	if len(cfg.Regions) == 0 {
		cfg.Regions = []string{"eu-west"}
	}
	if cfg.HashParams == (auth.HashParams{}) {
		cfg.HashParams = auth.LowCostHashParams()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	s = &Stack{}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.ns, err = eventlog.RunServer(eventlog.ServerConfig{StoreDir: filepath.Join(cfg.Dir, "nats"), Port: -1, SyncAlways: cfg.SyncAlways, ServerName: "iamload"}); err != nil {
		return nil, err
	}
	if s.nc, err = eventlog.Connect(s.ns); err != nil {
		return nil, err
	}
	metrics := api.NewMetrics(cfg.Regions)
	log, err := eventlog.Open(ctx, s.nc, eventlog.Config{})
	if err != nil {
		return nil, err
	}
	s.writer = eventlog.NewWriter(log, eventlog.WriterConfig{Logger: cfg.Logger})
	if err := s.writer.Start(ctx); err != nil {
		return nil, err
	}
	for _, region := range cfg.Regions {
		rep, err := replica.Open(replica.Config{Region: region, Dir: filepath.Join(cfg.Dir, "replicas", region), Head: log.Head})
		if err != nil {
			return nil, err
		}
		s.replicas = append(s.replicas, rep)
		p := projector.New(log, rep, region)
		p.Logger = cfg.Logger
		if err := p.Start(runCtx); err != nil {
			return nil, err
		}
		s.projectors = append(s.projectors, p)
	}
	keys := auth.NewKeySet()
	if err := keys.Rotate(time.Now(), 24*time.Hour); err != nil {
		return nil, err
	}
	s.api = api.New(api.Config{HashParams: cfg.HashParams, Logger: cfg.Logger}, s.writer, log, s.replicas, keys, metrics)
	s.api.Start(runCtx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.URL = "http://" + ln.Addr().String()
	s.http = &http.Server{Handler: s.api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http serve", "err", err)
		}
	}()
	if s.Admin, err = api.Bootstrap(ctx, s.writer, cfg.HashParams); err != nil {
		return nil, err
	} else if s.Admin == nil {
		return nil, fmt.Errorf("load: %s already holds a realm; use an empty directory", cfg.Dir)
	}
	s.Admin.TokenURL = s.URL + "/oauth2/token"
	return s, nil
}

// Close stops the stack; it is safe to call more than once.
func (s *Stack) Close() error {
	var errs []error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, err, s.http.Close())
		}
		cancel()
		s.http = nil
	}
	if s.api != nil {
		s.api.Stop()
		s.api = nil
	}
	for _, p := range s.projectors {
		p.Stop()
	}
	s.projectors = nil
	if s.writer != nil {
		s.writer.Stop()
		s.writer = nil
	}
	for _, r := range s.replicas {
		errs = append(errs, r.Close())
	}
	s.replicas = nil
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.nc != nil {
		s.nc.Close()
		s.nc = nil
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
	return errors.Join(errs...)
}
