package load

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest/testca"
	"github.com/iam-project/iam/eventlog/writer"
)

// StackConfig configures an in-process iam stack.
type StackConfig struct {
	// Dir holds the log and the read models; it must be empty or absent.
	Dir string
	// Regions served by in-process replicas. Default eu-west.
	Regions []string
	// SyncAlways fsyncs the log on every write, as iamd does by default.
	SyncAlways bool
	// TLS serves HTTPS with a leaf of a throwaway CA (cmd/iamd/daemon/daemontest/testca),
	// which only the Stack's Client trusts.
	TLS    bool
	Logger *slog.Logger
}

// Stack is the all-in-one iamd, started through the same daemon package as
// the command, on 127.0.0.1:0.
type Stack struct {
	// URL is the API's base URL.
	URL string
	// Admin holds the bootstrap admin's credentials.
	Admin *writer.BootstrapAdmin
	// ClientTLS trusts the stack's certificate (nil: plaintext), and
	// Client is an HTTP client with it.
	ClientTLS *tls.Config
	Client    *http.Client

	m *daemon.Main
}

// StartStack starts a stack and returns once its API serves and its admin
// exists. Close it when done, also after an error.
func StartStack(ctx context.Context, cfg StackConfig) (*Stack, error) {
	m := daemon.NewMain()
	m.Config.HTTPAddr = "127.0.0.1:0"
	m.Config.DataDir = cfg.Dir
	if len(cfg.Regions) > 0 {
		m.Config.Regions = cfg.Regions
	} else {
		m.Config.Regions = []string{"eu-west"}
	}
	m.Config.SyncAlways = cfg.SyncAlways
	// Only setup writes hash anything; the load is checks.
	m.Config.HashParams = auth.LowCostHashParams()
	m.Config.Logger = cfg.Logger
	m.Config.Stderr = io.Discard
	s := &Stack{m: m, Client: &http.Client{}}
	if cfg.TLS {
		ca, err := testca.New()
		if err != nil {
			return s, err
		}
		dir := filepath.Join(cfg.Dir, "tls")
		m.Config.TLSCert, m.Config.TLSKey = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, err
		}
		if _, err := ca.Issue(m.Config.TLSCert, m.Config.TLSKey); err != nil {
			return s, err
		}
		s.ClientTLS = &tls.Config{RootCAs: ca.Pool}
		s.Client.Transport = &http.Transport{TLSClientConfig: s.ClientTLS}
	}
	if err := m.Run(ctx); err != nil {
		return s, err
	}
	s.URL, s.Admin = m.URL(), m.Bootstrap
	return s, nil
}

// Close stops the stack.
func (s *Stack) Close() error { return s.m.Close() }
