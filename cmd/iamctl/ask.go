package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/iam-project/iam/api/client"
)

// askCommands are the questions, the history and the operations.
func (s *session) askCommands() []*cobra.Command {
	return []*cobra.Command{s.lagCommand(), s.checkCommand(), s.whoCanCommand(), s.historyCommand(),
		s.simulateCommand(), s.tokenCommand(), s.watchCommand(), s.exportCommand(), s.importCommand()}
}

// lagCommand prints every region's lag as a table; --watch reprints it
// every interval until interrupted.
func (s *session) lagCommand() *cobra.Command {
	var watch bool
	var interval time.Duration
	c := &cobra.Command{Use: "lag", Short: "each region's replication lag", Args: cobra.NoArgs}
	c.Flags().BoolVar(&watch, "watch", false, "refresh the table until interrupted")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh interval with --watch")
	c.RunE = run(func(ctx context.Context, _ []string) error {
		if interval < 100*time.Millisecond {
			return fmt.Errorf("%w: --interval must be at least 100ms", errUsage)
		}
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		if !watch {
			sts, err := cl.Replicas(ctx)
			if err != nil {
				return err
			}
			return s.print(map[string]any{"replicas": sts}, func(w io.Writer) { writeLagTable(w, sts) })
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			actx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
			sts, err := cl.Replicas(actx)
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Clear the screen and home the cursor, as watch(1) does.
			fmt.Fprintf(s.m.Stdout, "\x1b[H\x1b[2J")
			fmt.Fprintf(s.m.Stdout, "Every %s: iamctl lag    %s\n\n", interval, s.m.Now().Format(time.TimeOnly))
			if err != nil {
				fmt.Fprintf(s.m.Stdout, "error: %v\n", explain(err, "lag"))
			} else if err := s.print(map[string]any{"replicas": sts}, func(w io.Writer) { writeLagTable(w, sts) }); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
	})
	return c
}

// writeLagTable writes one row per region.
func writeLagTable(w io.Writer, sts []client.ReplicaStatus) {
	row(w, "REGION", "APPLIED", "HEAD", "LAG EVENTS", "LAG SECONDS", "STATE")
	for _, st := range sts {
		state := "ready"
		if !st.Healthy {
			state = "NOT READY"
		}
		if st.Error != "" {
			state += ": " + st.Error
		}
		row(w, st.Region, st.AppliedToken, st.HeadToken, st.LagEvents, fmt.Sprintf("%.3f", st.LagSeconds), state)
	}
}

// consistencyFlags adds the flags of a read's consistency to c.
func consistencyFlags(c *cobra.Command, q *client.Consistency) {
	c.Flags().StringVar(&q.Mode, "mode", "", "minimize_latency, at_least_as_fresh or fully_consistent")
	c.Flags().StringVar(&q.Token, "ct", "", "consistency token the answer must be at least as fresh as")
	_ = c.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(
		[]string{client.MinimizeLatency, client.AtLeastAsFresh, client.FullyConsistent}, cobra.ShellCompDirectiveNoFileComp))
}

// checkCommand asks one authorization question and prints the answer with
// its reason.
func (s *session) checkCommand() *cobra.Command {
	var q client.CheckRequest
	c := &cobra.Command{Use: "check", Short: "may a subject do an action on a resource? (with the reason)", Args: cobra.NoArgs,
		Example: "  iamctl check --subject u-123 --action read --resource hrn:here:data::org1:catalog-1"}
	c.Flags().StringVar(&q.Subject, "subject", "", "identity id (default: the caller)")
	c.Flags().StringVar(&q.Action, "action", "", "action, e.g. read")
	c.Flags().StringVar(&q.Resource, "resource", "", "resource HRN")
	c.Flags().StringVar(&q.Scope, "scope", "", "project HRN, for a project-scoped check")
	consistencyFlags(c, &q.Consistency)
	c.Flags().DurationVar(&q.Consistency.Wait, "wait", 0, "how long a region may wait for its replica (default: the server's)")
	c.RunE = run(func(ctx context.Context, _ []string) error {
		if q.Action == "" || q.Resource == "" {
			return fmt.Errorf("%w: check needs --action and --resource", errUsage)
		}
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		res, err := cl.Check(ctx, q)
		if err != nil {
			return err
		}
		return s.print(res, func(w io.Writer) {
			decision := "DENIED"
			if res.Allowed {
				decision = "ALLOWED"
			}
			row(w, "DECISION", "REASON", "REGION", "CONSISTENCY TOKEN")
			row(w, decision, res.Reason, res.Region, res.ConsistencyToken)
		})
	})
	return c
}

// whoCanCommand prints every identity that may do an action on a
// resource, with the reason its check gives, following the pages.
func (s *session) whoCanCommand() *cobra.Command {
	var q client.LookupRequest
	c := &cobra.Command{Use: "who-can", Short: "every identity that may do an action on a resource", Args: cobra.NoArgs}
	c.Flags().StringVar(&q.Action, "action", "", "action, e.g. read")
	c.Flags().StringVar(&q.Resource, "resource", "", "resource HRN")
	c.Flags().StringVar(&q.Scope, "scope", "", "project HRN, for a resource in a project")
	consistencyFlags(c, &q.Consistency)
	c.Flags().IntVar(&q.PageSize, "page-size", 0, "subjects per request (default: the server's)")
	c.RunE = run(func(ctx context.Context, _ []string) error {
		if q.Action == "" || q.Resource == "" {
			return fmt.Errorf("%w: who-can needs --action and --resource", errUsage)
		}
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		var all []client.Subject
		for {
			page, err := cl.LookupSubjects(ctx, q)
			if err != nil {
				return err
			}
			all = append(all, page.Subjects...)
			if page.NextPageToken == "" {
				break
			}
			q.PageToken = page.NextPageToken
		}
		return s.print(map[string]any{"subjects": all}, func(w io.Writer) {
			row(w, "SUBJECT", "KIND", "REASON")
			for _, su := range all {
				row(w, su.ID, su.Kind, su.Reason)
			}
		})
	})
	return c
}

// historyCommand prints each change of an identity's effective permissions
// between two tokens, with the event that caused it.
func (s *session) historyCommand() *cobra.Command {
	var from, to string
	c := &cobra.Command{Use: "history IDENTITY", Short: "an identity's access changes, with what caused each", Args: cobra.ExactArgs(1)}
	c.Flags().StringVar(&from, "from", "", "changes after this consistency token (default: from the first)")
	c.Flags().StringVar(&to, "to", "", "changes up to this consistency token (default: the log's head)")
	c.RunE = run(func(ctx context.Context, args []string) error {
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		changes, err := cl.AccessChanges(ctx, args[0], from, to)
		if err != nil {
			return err
		}
		return s.print(map[string]any{"identityId": args[0], "changes": changes}, func(w io.Writer) {
			row(w, "TOKEN", "TIME", "ACTOR", "CHANGE", "EFFECT", "ACTION", "RESOURCE")
			for _, ch := range changes {
				for _, p := range ch.Gained {
					row(w, ch.Token, ch.Time.Format(time.RFC3339), ch.Actor, "gained", p.Effect, p.Action, p.Resource)
				}
				for _, p := range ch.Lost {
					row(w, ch.Token, ch.Time.Format(time.RFC3339), ch.Actor, "lost", p.Effect, p.Action, p.Resource)
				}
			}
		})
	})
	return c
}

// simulateCommand sends a dry run read as JSON from --file (or stdin),
// {changes: [{method, path, body}], checks: [...]}, and prints its answer.
func (s *session) simulateCommand() *cobra.Command {
	var file string
	c := &cobra.Command{Use: "simulate", Short: "a dry run of proposed writes: who would gain or lose what", Args: cobra.NoArgs}
	c.Flags().StringVarP(&file, "file", "f", "-", "JSON file of the changes and checks (\"-\": stdin)")
	c.RunE = run(func(ctx context.Context, _ []string) error {
		var q client.SimulateRequest
		if err := s.readJSON(file, &q); err != nil {
			return fmt.Errorf("%w: simulate reads {changes, checks} as JSON: %v", errUsage, err)
		}
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		res, err := cl.Simulate(ctx, q)
		if err != nil {
			return err
		}
		return s.print(res, func(w io.Writer) {
			row(w, "IDENTITY", "CHANGE", "EFFECT", "ACTION", "RESOURCE")
			for _, a := range res.Affected {
				for _, p := range a.Gained {
					row(w, a.IdentityID, "gains", p.Effect, p.Action, p.Resource)
				}
				for _, p := range a.Lost {
					row(w, a.IdentityID, "loses", p.Effect, p.Action, p.Resource)
				}
			}
			if len(res.Checks) > 0 {
				fmt.Fprintln(w)
				row(w, "CHECK", "BEFORE", "AFTER", "REASON")
				for i, ch := range res.Checks {
					row(w, i+1, ch.Before, ch.After, ch.Reason)
				}
			}
			for _, e := range res.Errors {
				fmt.Fprintf(w, "\nchange %d refused: %d %s: %s\n", e.Index, e.Status, e.Code, e.Detail)
			}
		})
	})
	return c
}

// readJSON decodes the file ("-": stdin) strictly into v.
func (s *session) readJSON(file string, v any) error {
	in := s.m.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// tokenCommand prints an access token for the credentials given.
func (s *session) tokenCommand() *cobra.Command {
	var scope string
	c := &cobra.Command{Use: "token", Short: "print an access token (for IAM_TOKEN)", Args: cobra.NoArgs,
		Example: "  export IAM_TOKEN=$(iamctl token --bootstrap data/bootstrap-admin.json)"}
	c.Flags().StringVar(&scope, "scope", "", "project HRN, for a project-scoped token")
	c.RunE = run(func(ctx context.Context, _ []string) error {
		if _, err := s.client(ctx); err != nil {
			return err
		}
		if s.token != "" {
			fmt.Fprintln(s.m.Stdout, s.token)
			return nil
		}
		tok, err := client.ClientCredentials(ctx, s.tokenURL, s.clientID, s.clientSecret, scope, nil).Token()
		if err != nil {
			return err
		}
		fmt.Fprintln(s.m.Stdout, tok.AccessToken)
		return nil
	})
	return c
}

// watchCommand follows the change feed: one line per event (or one JSON
// object per line with -o json), reconnecting where it left off.
func (s *session) watchCommand() *cobra.Command {
	var after string
	var checkpoints bool
	c := &cobra.Command{Use: "watch", Short: "follow the realm's change feed (resumable)", Args: cobra.NoArgs,
		Example: "  iamctl watch --after ct1.5k   # resume after a token printed earlier"}
	c.Flags().StringVar(&after, "after", "", "changes after this consistency token (default: from the first)")
	c.Flags().BoolVar(&checkpoints, "checkpoints", false, "print the feed's idle checkpoints too")
	c.RunE = run(func(ctx context.Context, _ []string) error {
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(s.m.Stdout)
		return cl.Watch(ctx, after, func(e client.FeedEvent) error {
			if e.Checkpoint != nil && !checkpoints {
				return nil
			}
			if s.output == "json" {
				return enc.Encode(e)
			}
			if cp := e.Checkpoint; cp != nil {
				_, err := fmt.Fprintf(s.m.Stdout, "%s\tcheckpoint\thead %s\n", cp.Token, cp.HeadToken)
				return err
			}
			for _, cm := range e.Change.Commits {
				for _, ev := range cm.Events {
					if _, err := fmt.Fprintf(s.m.Stdout, "%s\t%s\t%s\t%s\t%s\n", e.Change.Token, cm.At.Format(time.RFC3339),
						cm.Actor, ev.Type, ev.Data); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
	return c
}
