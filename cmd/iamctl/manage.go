package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/client"
)

// manageCommands are the management operations of API.md's "Management"
// and "Ownership and sharing", one noun per kind and a verb per call, as
// zed and fga arrange theirs.
func (s *session) manageCommands() []*cobra.Command {
	return []*cobra.Command{s.usersCommand(), s.appsCommand(), s.credentialsCommand(), s.apiKeysCommand(),
		s.groupsCommand(), s.rolesCommand(), s.policiesCommand(), s.projectsCommand(), s.plansCommand(),
		s.sharesCommand(), s.managersCommand(), s.permissionsCommand()}
}

// verb makes a subcommand that takes exactly the named arguments and runs
// fn with a client.
func (s *session) verb(use, short string, fn func(ctx context.Context, cl *client.Client, args []string) error) *cobra.Command {
	n := len(strings.Fields(use)) - 1
	c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(n)}
	c.RunE = run(func(ctx context.Context, args []string) error {
		cl, err := s.client(ctx)
		if err != nil {
			return err
		}
		return fn(ctx, cl, args)
	})
	return c
}

// noun groups verbs under a kind. The first argument of each verb that
// takes one is an id of kind ("" for none): the shell completes it from
// the realm's list.
func (s *session) noun(use, kind, short string, verbs ...*cobra.Command) *cobra.Command {
	// Runnable, so that an unknown verb is refused (NoArgs) rather than
	// answered with the help.
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	for _, v := range verbs {
		if kind != "" && v.ValidArgsFunction == nil && len(strings.Fields(v.Use)) > 1 {
			v.ValidArgsFunction = s.completeIDs(kind)
		}
	}
	c.AddCommand(verbs...)
	return c
}

// completeIDs completes the first argument with the ids of kind, each
// described by its name (or email).
func (s *session) completeIDs(kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := s.client(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		items, err := client.ListAll[struct{ ID, Name, Email string }](cmd.Context(), cl, kind)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, it := range items {
			out = append(out, cobra.CompletionWithDesc(it.ID, or(it.Email, it.Name)))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// write makes a verb for a write whose answer is a WriteResult.
func (s *session) write(use, short string, fn func(ctx context.Context, cl *client.Client, args []string) (client.WriteResult, error)) *cobra.Command {
	return s.verb(use, short, func(ctx context.Context, cl *client.Client, args []string) error {
		r, err := fn(ctx, cl, args)
		if err != nil {
			return err
		}
		return s.printWrite(strings.Fields(use)[0]+" "+strings.Join(args, " "), r)
	})
}

func join(ss []string) string { return strings.Join(ss, ",") }

func (s *session) printIdentities(ids []client.Identity) error {
	return s.print(map[string]any{"items": ids}, func(w io.Writer) {
		row(w, "ID", "KIND", "STATUS", "NAME", "EMAIL", "ROLES", "GROUPS", "POLICIES")
		for _, i := range ids {
			row(w, i.ID, i.Kind, i.Status, i.Name, i.Email, join(i.Roles), join(i.Groups), join(i.Policies))
		}
	})
}

// listVerb lists every entity of a kind, following the pages.
func listVerb[T any](s *session, kind string, print func([]T) error) *cobra.Command {
	return s.verb("list", "list every one of the realm's "+kind, func(ctx context.Context, cl *client.Client, _ []string) error {
		items, err := client.ListAll[T](ctx, cl, kind)
		if err != nil {
			return err
		}
		return print(items)
	})
}

// getVerb reads one entity of a kind.
func getVerb[T any](s *session, kind string, print func([]T) error) *cobra.Command {
	return s.verb("get ID", "show one of the realm's "+kind, func(ctx context.Context, cl *client.Client, args []string) error {
		var v T
		if err := cl.Get(ctx, kind, args[0], &v); err != nil {
			return err
		}
		return print([]T{v})
	})
}

func (s *session) statusVerb(kind string, set func(*client.Client, context.Context, string, string) (client.WriteResult, error)) *cobra.Command {
	c := s.write("set-status ID active|deactivated", "activate or deactivate", func(ctx context.Context, cl *client.Client, args []string) (client.WriteResult, error) {
		if args[1] != "active" && args[1] != "deactivated" {
			return client.WriteResult{}, fmt.Errorf("%w: status must be active or deactivated, not %q", errUsage, args[1])
		}
		return set(cl, ctx, args[0], args[1])
	})
	c.Args = cobra.ExactArgs(2)
	c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return s.completeIDs(kind)(cmd, args, toComplete)
		case 1:
			return []cobra.Completion{"active", "deactivated"}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return c
}

func (s *session) usersCommand() *cobra.Command {
	var email, name string
	var passwordStdin bool
	create := s.verb("create", "create a user", func(ctx context.Context, cl *client.Client, _ []string) error {
		if email == "" || name == "" {
			return fmt.Errorf("%w: users create needs --email and --name", errUsage)
		}
		var password string
		if passwordStdin {
			// Read from stdin, not a flag: a flag stays in the shell's history.
			line, err := bufio.NewReader(s.m.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("%w: --password-stdin: no password on stdin", errUsage)
			}
			password = strings.TrimRight(line, "\r\n")
		}
		u, err := cl.CreateUser(ctx, email, name, password)
		if err != nil {
			return err
		}
		return s.print(u, func(w io.Writer) {
			row(w, "ID", "HRN", "EMAIL", "NAME", "CONSISTENCY TOKEN")
			row(w, u.ID, u.HRN, u.Email, u.Name, u.ConsistencyToken)
		})
	})
	create.Flags().StringVar(&email, "email", "", "the user's email (required)")
	create.Flags().StringVar(&name, "name", "", "the user's name (required)")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read an initial password from stdin's first line (default: none; the user is invited)")
	var newName, newEmail string
	update := s.write("update ID", "change a user's --name or --email", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		if newName == "" && newEmail == "" {
			return client.WriteResult{}, fmt.Errorf("%w: users update needs --name or --email", errUsage)
		}
		return cl.UpdateUser(ctx, a[0], newName, newEmail)
	})
	update.Flags().StringVar(&newName, "name", "", "the new name")
	update.Flags().StringVar(&newEmail, "email", "", "the new email")
	return s.noun("users", "users", "people: create, list, get, update, set-status, revoke-tokens, delete",
		listVerb(s, "users", s.printIdentities), getVerb(s, "users", s.printIdentities), create,
		s.statusVerb("users", (*client.Client).SetUserStatus),
		update,
		s.write("revoke-tokens ID", "revoke every token the user holds now", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RevokeTokens(ctx, a[0])
		}),
		s.write("delete ID", "delete a user for good", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.DeleteUser(ctx, a[0])
		}))
}

func (s *session) appsCommand() *cobra.Command {
	var name string
	var redirects []string
	create := s.verb("create", "create an app (you become its App Manager)", func(ctx context.Context, cl *client.Client, _ []string) error {
		if name == "" {
			return fmt.Errorf("%w: apps create needs --name", errUsage)
		}
		a, err := cl.CreateApp(ctx, name, redirects...)
		if err != nil {
			return err
		}
		return s.print(a, func(w io.Writer) {
			row(w, "ID", "HRN", "NAME", "CONSISTENCY TOKEN")
			row(w, a.ID, a.HRN, a.Name, a.ConsistencyToken)
		})
	})
	create.Flags().StringVar(&name, "name", "", "the app's name (required)")
	create.Flags().StringSliceVar(&redirects, "redirect-uri", nil, "an exact redirect URI for the authorization-code flow (repeatable)")
	return s.noun("apps", "apps", "machine identities: create, list, get, set-status, set-default-project, delete",
		listVerb(s, "apps", s.printIdentities), getVerb(s, "apps", s.printIdentities), create,
		s.statusVerb("apps", (*client.Client).SetAppStatus),
		s.write("set-default-project APP PROJECT_HRN", "scope the app's tokens to a project by default", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.SetAppDefaultProject(ctx, a[0], a[1])
		}),
		s.write("delete ID", "delete an app for good", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.DeleteApp(ctx, a[0])
		}))
}

func (s *session) credentialsCommand() *cobra.Command {
	add := s.verb("add APP", "add a client credential (the secret is shown once)", func(ctx context.Context, cl *client.Client, a []string) error {
		cr, err := cl.AddCredential(ctx, a[0])
		if err != nil {
			return err
		}
		return s.print(cr, func(w io.Writer) {
			row(w, "CREDENTIAL ID", "CLIENT ID", "CLIENT SECRET (shown once)", "CONSISTENCY TOKEN")
			row(w, cr.CredentialID, cr.ClientID, cr.ClientSecret, cr.ConsistencyToken)
		})
	})
	list := s.verb("list APP", "list an app's credentials (never their secrets)", func(ctx context.Context, cl *client.Client, a []string) error {
		var app client.Identity
		if err := cl.Get(ctx, "apps", a[0], &app); err != nil {
			return err
		}
		return s.print(map[string]any{"items": app.Credentials}, func(w io.Writer) {
			row(w, "CREDENTIAL ID", "CLIENT ID")
			for _, c := range app.Credentials {
				row(w, c.ID, c.ClientID)
			}
		})
	})
	return s.noun("credentials", "apps", "an app's client credentials: add, list, set-status, remove", add, list,
		enableVerb(s, "set-status APP CREDENTIAL_ID enabled|disabled", "enable or disable a credential (for rotation)", (*client.Client).SetCredentialStatus),
		s.write("remove APP CREDENTIAL_ID", "remove a credential", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RemoveCredential(ctx, a[0], a[1])
		}))
}

func (s *session) apiKeysCommand() *cobra.Command {
	add := s.verb("add APP", "add an API key (the key is shown once)", func(ctx context.Context, cl *client.Client, a []string) error {
		k, err := cl.AddAPIKey(ctx, a[0])
		if err != nil {
			return err
		}
		return s.print(k, func(w io.Writer) {
			row(w, "KEY ID", "API KEY (shown once)", "CONSISTENCY TOKEN")
			row(w, k.KeyID, k.Key, k.ConsistencyToken)
		})
	})
	return s.noun("api-keys", "apps", "an app's API keys: add, set-status, remove", add,
		enableVerb(s, "set-status APP KEY_ID enabled|disabled", "enable or disable an API key", (*client.Client).SetAPIKeyStatus),
		s.write("remove APP KEY_ID", "remove an API key", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RemoveAPIKey(ctx, a[0], a[1])
		}))
}

// enableVerb makes a verb that enables or disables an app's credential or
// key.
func enableVerb(s *session, use, short string, set func(*client.Client, context.Context, string, string, bool) (client.WriteResult, error)) *cobra.Command {
	return s.write(use, short, func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		if a[2] != "enabled" && a[2] != "disabled" {
			return client.WriteResult{}, fmt.Errorf("%w: status must be enabled or disabled, not %q", errUsage, a[2])
		}
		return set(cl, ctx, a[0], a[1], a[2] == "enabled")
	})
}

func (s *session) printGroups(gs []client.GroupInfo) error {
	return s.print(map[string]any{"items": gs}, func(w io.Writer) {
		row(w, "ID", "NAME", "MEMBERS", "POLICIES", "PROJECTS")
		for _, g := range gs {
			row(w, g.ID, g.Name, join(g.Members), join(g.Policies), join(g.Projects))
		}
	})
}

func (s *session) groupsCommand() *cobra.Command {
	var name string
	create := s.verb("create", "create a group (you become its admin)", func(ctx context.Context, cl *client.Client, _ []string) error {
		if name == "" {
			return fmt.Errorf("%w: groups create needs --name", errUsage)
		}
		g, err := cl.CreateGroup(ctx, name)
		if err != nil {
			return err
		}
		return s.print(g, func(w io.Writer) {
			row(w, "ID", "HRN", "NAME", "CONSISTENCY TOKEN")
			row(w, g.ID, g.HRN, g.Name, g.ConsistencyToken)
		})
	})
	create.Flags().StringVar(&name, "name", "", "the group's name (required)")
	return s.noun("groups", "groups", "groups and their members: create, list, get, add-member, remove-member, permissions",
		listVerb(s, "groups", s.printGroups), getVerb(s, "groups", s.printGroups), create,
		s.write("add-member GROUP IDENTITY", "put an identity in a group", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.AddMember(ctx, a[0], a[1])
		}),
		s.write("remove-member GROUP IDENTITY", "take an identity out of a group", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RemoveMember(ctx, a[0], a[1])
		}),
		s.verb("permissions GROUP", "a group's effective permissions", func(ctx context.Context, cl *client.Client, a []string) error {
			ps, err := cl.GroupPermissions(ctx, a[0])
			if err != nil {
				return err
			}
			return s.printPermissions(a[0], ps)
		}))
}

func (s *session) rolesCommand() *cobra.Command {
	list := s.verb("list", "the predefined roles", func(ctx context.Context, cl *client.Client, _ []string) error {
		rs, err := cl.Roles(ctx)
		if err != nil {
			return err
		}
		return s.print(map[string]any{"items": rs}, func(w io.Writer) {
			row(w, "ROLE", "DESCRIPTION")
			for _, r := range rs {
				row(w, r.Name, r.Description)
			}
		})
	})
	return s.noun("roles", "", "predefined roles: list, grant, revoke", list,
		s.write("grant IDENTITY ROLE", "grant a role to an identity", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.GrantRole(ctx, a[0], a[1])
		}),
		s.write("revoke IDENTITY ROLE", "revoke a role from an identity", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RevokeRole(ctx, a[0], a[1])
		}))
}

// statementFlags reads a policy's statements from --allow and --deny
// ("ACTIONS=RESOURCES", each a comma-separated list) and --file (a JSON
// array of {effect, actions, resources}).
type statementFlags struct {
	allow, deny []string
	file        string
}

func (f *statementFlags) add(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.allow, "allow", nil, `an allow statement "ACTIONS=RESOURCES", e.g. "read,write=hrn:here:data::org1:catalog-*" (repeatable)`)
	c.Flags().StringArrayVar(&f.deny, "deny", nil, `a deny statement "ACTIONS=RESOURCES" (repeatable)`)
	c.Flags().StringVarP(&f.file, "file", "f", "", `a JSON file of statements, [{"effect","actions","resources"}] ("-": stdin)`)
}

func (f *statementFlags) statements(s *session) ([]client.Statement, error) {
	var out []client.Statement
	if f.file != "" {
		if err := s.readJSON(f.file, &out); err != nil {
			return nil, fmt.Errorf("%w: --file: %v", errUsage, err)
		}
	}
	for _, e := range []struct {
		effect string
		specs  []string
	}{{"allow", f.allow}, {"deny", f.deny}} {
		effect := e.effect
		for _, spec := range e.specs {
			actions, resources, ok := strings.Cut(spec, "=")
			if !ok || actions == "" || resources == "" {
				return nil, fmt.Errorf("%w: --%s %q: want ACTIONS=RESOURCES", errUsage, effect, spec)
			}
			out = append(out, client.Statement{Effect: effect, Actions: strings.Split(actions, ","), Resources: strings.Split(resources, ",")})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: a policy needs statements: --allow, --deny or --file", errUsage)
	}
	return out, nil
}

func statementsText(sts []client.Statement) string {
	var b strings.Builder
	for i, st := range sts {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s on %s", st.Effect, join(st.Actions), join(st.Resources))
	}
	return b.String()
}

func (s *session) printPolicies(ps []client.PolicyInfo) error {
	return s.print(map[string]any{"items": ps}, func(w io.Writer) {
		row(w, "ID", "NAME", "ATTACHED TO", "STATEMENTS")
		for _, p := range ps {
			row(w, p.ID, p.Name, join(p.AttachedTo), statementsText(p.Statements))
		}
	})
}

func (s *session) policiesCommand() *cobra.Command {
	var name string
	var sf statementFlags
	create := s.verb("create", "create a realm policy", func(ctx context.Context, cl *client.Client, _ []string) error {
		if name == "" {
			return fmt.Errorf("%w: policies create needs --name", errUsage)
		}
		sts, err := sf.statements(s)
		if err != nil {
			return err
		}
		p, err := cl.CreatePolicy(ctx, name, sts...)
		if err != nil {
			return err
		}
		return s.print(p, func(w io.Writer) {
			row(w, "ID", "HRN", "NAME", "CONSISTENCY TOKEN")
			row(w, p.ID, p.HRN, p.Name, p.ConsistencyToken)
		})
	})
	create.Flags().StringVar(&name, "name", "", "the policy's name (required)")
	sf.add(create)
	return s.noun("policies", "policies", "realm policies and their attachments: create, list, get, attach, detach",
		listVerb(s, "policies", s.printPolicies), getVerb(s, "policies", s.printPolicies), create,
		s.write("attach POLICY IDENTITY_OR_GROUP", "attach a policy", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.AttachPolicy(ctx, a[0], a[1])
		}),
		s.write("detach POLICY IDENTITY_OR_GROUP", "detach a policy", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.DetachPolicy(ctx, a[0], a[1])
		}))
}

func (s *session) printProjects(ps []client.ProjectInfo) error {
	return s.print(map[string]any{"items": ps}, func(w io.Writer) {
		row(w, "ID", "NAME", "HRN", "MEMBERS", "RESOURCES")
		for _, p := range ps {
			var members, resources []string
			for _, m := range p.Members {
				members = append(members, m.ID+"("+join(m.Policies)+")")
			}
			for _, r := range p.Resources {
				resources = append(resources, r.HRN+" ("+r.Relation+")")
			}
			row(w, p.ID, p.Name, p.HRN, strings.Join(members, " "), strings.Join(resources, " "))
		}
	})
}

func (s *session) projectsCommand() *cobra.Command {
	var name string
	create := s.verb("create", "create a project (you become its Project Admin)", func(ctx context.Context, cl *client.Client, _ []string) error {
		if name == "" {
			return fmt.Errorf("%w: projects create needs --name", errUsage)
		}
		p, err := cl.CreateProject(ctx, name)
		if err != nil {
			return err
		}
		return s.print(p, func(w io.Writer) {
			row(w, "ID", "HRN", "NAME", "CONSISTENCY TOKEN")
			row(w, p.ID, p.HRN, p.Name, p.ConsistencyToken)
		})
	})
	create.Flags().StringVar(&name, "name", "", "the project's name (required)")

	var memberPolicies []string
	setMember := s.write("set-member PROJECT IDENTITY_OR_GROUP", "make an identity or group a member, with the --policy policies (none: the project's defaults)", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		return cl.SetProjectMember(ctx, a[0], a[1], memberPolicies...)
	})
	setMember.Flags().StringSliceVar(&memberPolicies, "policy", nil, "a realm policy id or a project policy's HRN that the membership gives (repeatable)")

	var relation string
	addResource := s.write("add-resource PROJECT HRN", "put a resource in the project (--relation home or link)", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		if relation != "home" && relation != "link" {
			return client.WriteResult{}, fmt.Errorf("%w: --relation must be home or link", errUsage)
		}
		return cl.AddProjectResource(ctx, a[0], a[1], relation)
	})
	addResource.Flags().StringVar(&relation, "relation", "home", "home (created in the project) or link (linked from its home)")
	_ = addResource.RegisterFlagCompletionFunc("relation", cobra.FixedCompletions([]string{"home", "link"}, cobra.ShellCompDirectiveNoFileComp))

	var ppName string
	var sf statementFlags
	createPolicy := s.verb("create-policy PROJECT", "create a policy that lives in the project", func(ctx context.Context, cl *client.Client, a []string) error {
		if ppName == "" {
			return fmt.Errorf("%w: projects create-policy needs --name", errUsage)
		}
		sts, err := sf.statements(s)
		if err != nil {
			return err
		}
		p, err := cl.CreateProjectPolicy(ctx, a[0], ppName, sts...)
		if err != nil {
			return err
		}
		return s.print(p, func(w io.Writer) {
			row(w, "ID", "HRN", "NAME", "CONSISTENCY TOKEN")
			row(w, p.ID, p.HRN, p.Name, p.ConsistencyToken)
		})
	})
	createPolicy.Flags().StringVar(&ppName, "name", "", "the policy's name (required)")
	sf.add(createPolicy)

	policies := s.verb("policies PROJECT", "the project's own policies and default member policies", func(ctx context.Context, cl *client.Client, a []string) error {
		pp, err := cl.ProjectPolicies(ctx, a[0])
		if err != nil {
			return err
		}
		return s.print(pp, func(w io.Writer) {
			row(w, "ID", "NAME", "DEFAULT", "STATEMENTS")
			defaults := map[string]bool{}
			for _, d := range pp.DefaultMemberPolicies {
				defaults[d] = true
			}
			for _, p := range pp.Items {
				row(w, p.ID, p.Name, defaults[p.ID], statementsText(p.Statements))
			}
		})
	})

	return s.noun("projects", "projects", "projects, their members, resources and policies",
		listVerb(s, "projects", s.printProjects), getVerb(s, "projects", s.printProjects), create,
		setMember,
		s.write("remove-member PROJECT IDENTITY_OR_GROUP", "take a member out of the project", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RemoveProjectMember(ctx, a[0], a[1])
		}),
		addResource,
		s.write("remove-resource PROJECT HRN", "take a resource out of the project", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.RemoveProjectResource(ctx, a[0], a[1])
		}),
		s.write("set-linkable PROJECT HRN true|false", "whether a resource homed here may be linked elsewhere", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			linkable, err := strconv.ParseBool(a[2])
			if err != nil {
				return client.WriteResult{}, fmt.Errorf("%w: linkable must be true or false, not %q", errUsage, a[2])
			}
			return cl.SetResourceLinkable(ctx, a[0], a[1], linkable)
		}),
		policies, createPolicy,
		s.write("delete-policy PROJECT POLICY", "delete a project policy", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.DeleteProjectPolicy(ctx, a[0], a[1])
		}),
		s.defaultPoliciesVerb())
}

func (s *session) defaultPoliciesVerb() *cobra.Command {
	c := s.write("set-default-policies PROJECT [POLICY...]", "the policies a member added without policies gets", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		return cl.SetDefaultMemberPolicies(ctx, a[0], a[1:]...)
	})
	c.Args = cobra.MinimumNArgs(1)
	return c
}

func (s *session) plansCommand() *cobra.Command {
	var name string
	var policies []string
	create := s.verb("create", "create a plan: a named set of realm policies", func(ctx context.Context, cl *client.Client, _ []string) error {
		if name == "" {
			return fmt.Errorf("%w: plans create needs --name", errUsage)
		}
		p, err := cl.CreatePlan(ctx, name, policies...)
		if err != nil {
			return err
		}
		return s.print(p, func(w io.Writer) {
			row(w, "ID", "HRN", "NAME", "POLICIES", "CONSISTENCY TOKEN")
			row(w, p.ID, p.HRN, p.Name, join(p.Policies), p.ConsistencyToken)
		})
	})
	create.Flags().StringVar(&name, "name", "", "the plan's name (required)")
	create.Flags().StringSliceVar(&policies, "policy", nil, "a realm policy id (repeatable)")
	return s.noun("plans", "", "plans: create, attach, detach", create,
		s.write("attach PLAN IDENTITY_OR_GROUP", "attach a plan", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.AttachPlan(ctx, a[0], a[1])
		}),
		s.write("detach PLAN IDENTITY_OR_GROUP", "detach a plan", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.DetachPlan(ctx, a[0], a[1])
		}))
}

func (s *session) printRefs(title string, refs []client.Ref) error {
	return s.print(map[string]any{"items": refs}, func(w io.Writer) {
		row(w, title, "KIND")
		for _, r := range refs {
			row(w, r.ID, r.Kind)
		}
	})
}

func (s *session) sharesCommand() *cobra.Command {
	return s.noun("shares", "apps", "who an app is shared with: list, add, remove",
		s.verb("list APP", "list an app's sharees", func(ctx context.Context, cl *client.Client, a []string) error {
			refs, err := cl.Shares(ctx, a[0])
			if err != nil {
				return err
			}
			return s.printRefs("SHAREE", refs)
		}),
		s.write("add APP IDENTITY_OR_GROUP", "share an app (read, write, manage and share)", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.ShareApp(ctx, a[0], a[1])
		}),
		s.write("remove APP IDENTITY_OR_GROUP", "take a share back", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
			return cl.UnshareApp(ctx, a[0], a[1])
		}))
}

// managedKinds are the kinds that have managers, as their path segments.
var managedKinds = []string{"apps", "groups", "projects"}

func checkManagedKind(kind string) error {
	for _, k := range managedKinds {
		if k == kind {
			return nil
		}
	}
	return fmt.Errorf("%w: KIND must be apps, groups or projects, not %q", errUsage, kind)
}

func (s *session) managersCommand() *cobra.Command {
	completeKind := func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return managedKinds, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list := s.verb("list KIND ID", "list the managers of an app, group or project", func(ctx context.Context, cl *client.Client, a []string) error {
		if err := checkManagedKind(a[0]); err != nil {
			return err
		}
		refs, err := cl.Managers(ctx, a[0], a[1])
		if err != nil {
			return err
		}
		return s.printRefs("MANAGER", refs)
	})
	add := s.write("add KIND ID MANAGER", "add a manager", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		if err := checkManagedKind(a[0]); err != nil {
			return client.WriteResult{}, err
		}
		return cl.AddManager(ctx, a[0], a[1], a[2])
	})
	remove := s.write("remove KIND ID MANAGER", "remove a manager (not the last)", func(ctx context.Context, cl *client.Client, a []string) (client.WriteResult, error) {
		if err := checkManagedKind(a[0]); err != nil {
			return client.WriteResult{}, err
		}
		return cl.RemoveManager(ctx, a[0], a[1], a[2])
	})
	for _, c := range []*cobra.Command{list, add, remove} {
		c.ValidArgsFunction = completeKind
	}
	return s.noun("managers", "", "managers of apps, groups and projects: list, add, remove", list, add, remove)
}

func (s *session) printPermissions(id string, ps []iam.Permission) error {
	return s.print(map[string]any{"id": id, "permissions": ps}, func(w io.Writer) {
		row(w, "EFFECT", "ACTION", "RESOURCE", "SOURCE")
		for _, p := range ps {
			row(w, p.Effect, p.Action, p.Resource, sourceText(p.Source))
		}
	})
}

func (s *session) permissionsCommand() *cobra.Command {
	return s.verb("permissions IDENTITY", "an identity's effective permissions, with where each comes from", func(ctx context.Context, cl *client.Client, a []string) error {
		ps, err := cl.Permissions(ctx, a[0])
		if err != nil {
			return err
		}
		return s.printPermissions(a[0], ps)
	})
}

// sourceText says where a permission comes from, in words.
func sourceText(src iam.Source) string {
	t := src.Kind + " " + src.ID
	if src.Via != "" {
		t += " via group " + src.Via
	}
	if src.Plan != "" {
		t += " of plan " + src.Plan
	}
	if src.Project != "" {
		t += " in project " + src.Project
	}
	return t
}
