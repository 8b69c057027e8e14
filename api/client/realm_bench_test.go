package client_test

import (
	"context"
	"fmt"
	"testing"

	iamclient "github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// benchRealm starts an iamd holding users users in users/10 groups of 10,
// a policy attached to each group and a project with each group as a
// member, and returns an admin client of it.
func benchRealm(b *testing.B, users int) *iamclient.Client {
	m := daemontest.Start(b, "")
	ctx := context.Background()
	base := daemontest.URL(m)
	c, err := iamclient.New([]string{base}, iamclient.WithTokenSource(
		iamclient.ClientCredentials(ctx, base+"/oauth2/token", m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "", nil)))
	if err != nil {
		b.Fatal(err)
	}
	must := func(_ any, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	var g iamclient.Group
	for i := range users {
		if i%10 == 0 {
			g, err = c.CreateGroup(ctx, fmt.Sprintf("group-%d", i/10))
			must(g, err)
			pol, err := c.CreatePolicy(ctx, fmt.Sprintf("policy-%d", i/10), iamclient.Statement{Effect: "allow",
				Actions: []string{"read"}, Resources: []string{fmt.Sprintf("hrn:here:data::%s:catalog-%d-*", m.Bootstrap.Realm, i/10)}})
			must(pol, err)
			must(c.AttachPolicy(ctx, pol.ID, g.ID))
			p, err := c.CreateProject(ctx, fmt.Sprintf("project-%d", i/10))
			must(p, err)
			must(c.SetProjectMember(ctx, p.ID, g.ID, pol.ID))
		}
		u, err := c.CreateUser(ctx, fmt.Sprintf("user-%d@example.com", i), fmt.Sprintf("User %d", i), "")
		must(u, err)
		must(c.AddMember(ctx, g.ID, u.ID))
	}
	return c
}

// BenchmarkExportRealm exports a realm of 100 users, 10 groups, 10
// policies and 10 projects: the reads an export makes, and the document.
func BenchmarkExportRealm(b *testing.B) {
	c := benchRealm(b, 100)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.ExportRealm(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImportRealm_Unchanged re-imports that realm's own document: the
// reads and the comparison of an import that has nothing to write.
func BenchmarkImportRealm_Unchanged(b *testing.B) {
	c := benchRealm(b, 100)
	ctx := context.Background()
	d, err := c.ExportRealm(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := c.ImportRealm(ctx, d, nil)
		if err != nil || res.Writes != 0 {
			b.Fatalf("got %+v, %v; want no writes", res, err)
		}
	}
}
