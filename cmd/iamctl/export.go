package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/iam-project/iam/api/client"
)

func (s *session) exportCommand() *cobra.Command {
	var file string
	c := &cobra.Command{Use: "export", Short: "write the realm's access as one JSON document (names, not ids)", Args: cobra.NoArgs,
		Long: `export writes the realm's users, apps, groups, policies and projects, with
their roles, members, attachments, project members, resources, managers and
shares, as one JSON document that names entities by email or name, never by
id, and the realm as {realm}: "iamctl import" applies it to another realm.
Secrets (credentials, API keys, passwords) and plans are not exported. The
document is JSON whatever -o says; it holds emails, so it is written 0600.`,
		Example: "  iamctl export --bootstrap old/bootstrap-admin.json -f realm.json"}
	c.Flags().StringVarP(&file, "file", "f", "-", `where to write the document ("-": stdout)`)
	c.RunE = run(func(ctx context.Context, _ []string) error {
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		d, err := cl.ExportRealm(ctx)
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if file == "-" {
			_, err = s.m.Stdout.Write(data)
			return err
		}
		return os.WriteFile(file, data, 0o600)
	})
	return c
}

func (s *session) importCommand() *cobra.Command {
	var file string
	c := &cobra.Command{Use: "import", Short: "apply an exported document to this realm (idempotent; matches by names)", Args: cobra.NoArgs,
		Long: `import creates the users, apps, groups, policies and projects of the document
that the realm lacks (matched by email or name) and adds the roles, members,
attachments, project members, resources, managers and shares it lacks. It
removes nothing, and a second import of the same document writes nothing.
Credentials, API keys and passwords are not in a document: issue new ones.`,
		Example: "  iamctl import --bootstrap new/bootstrap-admin.json -f realm.json"}
	c.Flags().StringVarP(&file, "file", "f", "-", `the document ("-": stdin)`)
	c.RunE = run(func(ctx context.Context, _ []string) error {
		var d client.RealmDocument
		if err := s.readJSON(file, &d); err != nil {
			return fmt.Errorf("%w: import reads a document of iamctl export: %v", errUsage, err)
		}
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		res, err := cl.ImportRealm(ctx, &d, func(w string) { fmt.Fprintln(s.m.Stderr, "iamctl import:", w) })
		if perr := s.print(res, func(w io.Writer) {
			row(w, "WRITES", "CONSISTENCY TOKEN")
			row(w, res.Writes, res.ConsistencyToken)
		}); err == nil {
			err = perr
		}
		return err
	})
	return c
}
