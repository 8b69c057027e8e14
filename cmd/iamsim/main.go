// Command iamsim runs iam's multi-region simulation (package sim): a hub
// and regions in this process, every hub↔region link through a fault
// proxy, a seeded workload, and a measured report.
//
//	iamsim [--out DIR] [--short] [--seed N] [--quiet]          the default scenario (< 1 minute)
//	iamsim run [--out DIR] [--short] [--seed N] [--quiet] FILE  a scenario file (testdata/sim/*.json)
//
// It prints a progress line while it runs and a summary table at the end;
// --out writes report.json, the plots and index.html. It exits 1 when the
// run misses an SLO, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/iam-project/iam/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, runs the scenario and
// returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := sim.DefaultConfig()
	fs := flag.NewFlagSet("iamsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "write the report (JSON, plots, HTML) to this directory")
	short := fs.Bool("short", false, "run the scenario's short (CI) version")
	seed := fs.Int64("seed", 0, "override the scenario's seed")
	quiet := fs.Bool("quiet", false, "no progress line")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: iamsim [flags]            run the default scenario\n       iamsim run [flags] FILE  run a scenario file\nflags:")
		fs.PrintDefaults()
	}
	var file string
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
		// Flags may come before or after the file.
		for {
			if err := fs.Parse(args); err != nil {
				return 2
			}
			if fs.NArg() == 0 {
				break
			}
			if file != "" {
				fmt.Fprintf(stderr, "iamsim run: one scenario file, got %q and %q\n", file, fs.Arg(0))
				return 2
			}
			file, args = fs.Arg(0), fs.Args()[1:]
		}
		if file == "" {
			fs.Usage()
			return 2
		}
	} else if err := fs.Parse(args); err != nil {
		return 2
	} else if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if file != "" {
		s, err := sim.LoadScenario(file, *short)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg.Scenario = s
	} else if *short {
		s, err := cfg.Scenario.Shortened()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg.Scenario = s
	}
	if *seed != 0 {
		cfg.Scenario.Seed = *seed
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	r, err := sim.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "iamsim: interrupted")
		} else {
			fmt.Fprintln(stderr, "iamsim:", err)
		}
		return 1
	}
	r.WriteSummary(stdout)
	if *out != "" {
		if err := sim.WriteReport(*out, r); err != nil {
			fmt.Fprintln(stderr, "iamsim: write report:", err)
			return 1
		}
		fmt.Fprintf(stdout, "report: %s/%s\n", *out, sim.FileHTML)
	}
	if !r.Pass {
		return 1
	}
	return 0
}
