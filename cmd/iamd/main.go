// Command iamd runs iam. With no flags it is the all-in-one: an embedded
// NATS JetStream server holding the log under ./data, one writer, one
// replica per region, and the HTTP API on 127.0.0.1:8080. `iamd hub ...`
// and `iamd region ...` run the multi-region deployment (docs/deploy/);
// `iamd pki DIR` writes the certificates, nkeys and hub secrets they need.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/iam-project/iam/cmd/iamd/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "pki" {
		if err := daemon.PKI(os.Args[2:], os.Stderr); err != nil {
			exitUsage(err)
		}
		return
	}
	m := daemon.NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		exitUsage(err)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		slog.Error("iamd failed", "err", err)
		os.Exit(1)
	}
	// SIGHUP: read --tls-cert and --tls-key again (certificate rotation).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := m.ReloadTLS(); err != nil {
				slog.Error("iamd: TLS reload", "err", err)
			} else {
				slog.Info("iamd: TLS certificate reloaded")
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	if err := m.Close(); err != nil {
		slog.Error("iamd stop", "err", err)
		os.Exit(1)
	}
}

// exitUsage ends a command line that did not start iamd: 0 when help was
// asked for (and printed), 2 with the error otherwise.
func exitUsage(err error) {
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}
