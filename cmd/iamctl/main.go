// Command iamctl is the operator's command line for iam: every management
// operation (users, apps, credentials, API keys, groups, roles, policies,
// projects, plans, shares, managers), checks with their reasons, who-can,
// history, dry runs, the change feed, lag, and export/import of a realm.
// "iamctl --help" lists the commands; docs/iamctl.md is the reference.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := NewMain().Run(ctx, os.Args[1:])
	switch {
	case err == nil, errors.Is(err, context.Canceled) && ctx.Err() != nil:
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "iamctl:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "iamctl:", err)
		os.Exit(1)
	}
}
