package load

import (
	"context"
	"io"
	"log/slog"

	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon"
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
	Logger     *slog.Logger
}

// Stack is the all-in-one iamd, started through the same daemon package as
// the command, on 127.0.0.1:0.
type Stack struct {
	// URL is the API's base URL.
	URL string
	// Admin holds the bootstrap admin's credentials.
	Admin *writer.BootstrapAdmin

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
	s := &Stack{m: m}
	if err := m.Run(ctx); err != nil {
		return s, err
	}
	s.URL, s.Admin = "http://"+m.Addr, m.Bootstrap
	return s, nil
}

// Close stops the stack.
func (s *Stack) Close() error { return s.m.Close() }
