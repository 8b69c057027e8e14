// Command iamctl is the operator's command line for iam:
//
//	iamctl lag   [--watch] [--interval 2s]   each region's replication lag, as a table
//	iamctl check --subject ID --action A --resource HRN [--scope HRN] [--mode M] [--ct TOKEN]
//	iamctl who-can --action A --resource HRN [--scope HRN] [--mode M] [--ct TOKEN]
//	iamctl history --identity ID [--from TOKEN] [--to TOKEN]   its access changes
//	iamctl simulate [--file F]                a dry run of {changes, checks} (JSON; stdin by default)
//	iamctl token                             print an access token
//
// Every command takes --url (repeatable or comma-separated, nearest region
// first; $IAM_URL), and credentials: --token ($IAM_TOKEN), or --client-id
// and --client-secret ($IAM_CLIENT_ID, $IAM_CLIENT_SECRET) with --token-url,
// or --bootstrap DATA/bootstrap-admin.json.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	err := m.Run(ctx, os.Args[1:])
	switch {
	case err == nil, errors.Is(err, context.Canceled) && ctx.Err() != nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "iamctl:", err)
		os.Exit(1)
	}
}
