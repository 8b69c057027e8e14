// Command iamload measures iam's check throughput against a bare net/http
// server that only decodes and encodes the same JSON: both in-process, on
// 127.0.0.1, driven by the same closed-loop generator for the same time and
// concurrency. It prints checks/s, p50 and p99 for each and their ratio.
// With -tls it compares iam over HTTPS with iam over plaintext HTTP instead;
// with -authzen, the same checks through /v1/check, one AuthZEN evaluation
// a request and -batch (100) a boxcarred AuthZEN evaluations request.
// The figures are for notes; nothing passes or fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/iam-project/iam/sim/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := load.DefaultConfig()
	fs := flag.NewFlagSet("iamload", flag.ContinueOnError)
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each side is measured")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "concurrent connections (closed-loop workers)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unmeasured warmup before each side")
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "consistency mode of the checks")
	fs.StringVar(&cfg.Auth, "auth", cfg.Auth, "how the checking app authenticates: bearer or apikey")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "users the checks rotate through")
	fs.IntVar(&cfg.Resources, "resources", cfg.Resources, "resources the checks rotate through")
	fs.StringVar(&cfg.Dir, "data", cfg.Dir, "data directory for iam (default: a temporary one, removed after)")
	fs.BoolVar(&cfg.Fsync, "fsync", cfg.Fsync, "fsync the log on every write")
	authzen := fs.Bool("authzen", false, "compare AuthZEN evaluation and evaluations (-batch checks a request) with /v1/check, in checks/s, instead of iam with the bare server")
	batch := fs.Int("batch", 100, "checks per AuthZEN evaluations request, with -authzen")
	fs.BoolVar(&cfg.TLS, "tls", cfg.TLS, "compare iam over HTTPS (a throwaway CA's certificate) with iam over plaintext HTTP, instead of iam with the bare server")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *authzen {
		rep, err := load.CompareAuthZEN(ctx, cfg, *batch, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "iamload:", err)
			os.Exit(1)
		}
		fmt.Printf("ratio evaluation/check = %.2f (target >= 0.90)\n", rep.EvaluationRatio())
		fmt.Printf("ratio evaluations/check = %.2f in checks/s, %d a request (target >= 5)\n", rep.EvaluationsRatio(), *batch)
		return
	}
	rep, err := load.Compare(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "iamload:", err)
		os.Exit(1)
	}
	if cfg.TLS {
		fmt.Printf("ratio https/http = %.2f (target >= 0.80)\n", rep.Ratio())
	} else {
		fmt.Printf("ratio iam/bare = %.2f (target >= 0.60)\n", rep.Ratio())
	}
}
