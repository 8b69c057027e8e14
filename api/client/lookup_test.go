package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	iamclient "github.com/iam-project/iam/api/client"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// TestClient_LookupSubjects pages through "who can" with a Session right
// after the writes that grant it: the session's token makes the first page
// reflect them, and the page tokens carry the rest.
func TestClient_LookupSubjects(t *testing.T) {
	m := daemontest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := daemontest.URL(m)
	ts := iamclient.ClientCredentials(ctx, base+"/oauth2/token", m.Bootstrap.ClientID, m.Bootstrap.ClientSecret, "", openapitest.Client(t))
	c, err := iamclient.New([]string{base}, iamclient.WithTokenSource(ts), iamclient.WithHTTPClient(openapitest.Client(t)))
	if err != nil {
		t.Fatal(err)
	}
	admin := c.Session()
	res := "hrn:here:data::" + m.Bootstrap.Realm + ":catalog-1"
	group, err := admin.CreateGroup(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := admin.CreatePolicy(ctx, "read catalogs",
		iamclient.Statement{Effect: "allow", Actions: []string{"read"}, Resources: []string{"hrn:here:data::" + m.Bootstrap.Realm + ":catalog-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AttachPolicy(ctx, policy.ID, group.ID); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		u, err := admin.CreateUser(ctx, email, "U", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.AddMember(ctx, group.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		want = append(want, u.ID)
	}
	var got []string
	q := iamclient.LookupRequest{Action: "read", Resource: res, PageSize: 1}
	for {
		page, err := admin.LookupSubjects(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Subjects) > 1 || page.ConsistencyToken == "" {
			t.Fatalf("got page %+v, want at most one subject and a token", page)
		}
		for _, s := range page.Subjects {
			got = append(got, s.ID)
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	for _, id := range want {
		if !slices.Contains(got, id) {
			t.Fatalf("got %v, want %s among them", got, id)
		}
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatalf("got %v, want each subject once, in order", got)
	}
	_, err = admin.LookupSubjects(ctx, iamclient.LookupRequest{Action: "read", Resource: res, PageToken: "junk"})
	if e, ok := errors.AsType[*iamclient.Error](err); !ok || e.Code != "invalid_argument" || e.Field != "pageToken" {
		t.Fatalf("bad page token: got %v, want invalid_argument naming pageToken", err)
	}
}
