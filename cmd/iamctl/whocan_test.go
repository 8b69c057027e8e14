package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// TestWhoCan runs `iamctl who-can` against a real iamd, one subject per
// page, and finds every holder with its reason across the pages.
func TestWhoCan(t *testing.T) {
	m := daemontest.Start(t, "")
	admin := daemontest.AdminClient(t, m)
	realm := m.Bootstrap.Realm
	resource := "hrn:here:data::" + realm + ":catalog-1"
	var users []string
	for _, name := range []string{"ann", "bob"} {
		u := admin.Must(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": name + "@example.com", "name": name})
		users = append(users, u.Str("id"))
	}
	pol := admin.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": "readers",
		"statements": []map[string]any{{"effect": "allow", "actions": []string{"read"}, "resources": []string{resource}}}})
	var last string
	for _, u := range users {
		last = admin.Must(http.StatusOK, "PUT", "/v1/policies/"+pol.Str("id")+"/attachments/"+u, nil).Str("consistencyToken")
	}
	main, out := testMain(nil)
	err := main.Run(context.Background(), []string{"who-can", "--url", daemontest.URL(m), "--client-id", m.Bootstrap.ClientID,
		"--client-secret", m.Bootstrap.ClientSecret, "--token-url", m.Bootstrap.TokenURL,
		"--action", "read", "--resource", resource, "--ct", last, "--page-size", "1"})
	if err != nil {
		t.Fatalf("who-can: %v\n%s", err, out)
	}
	for _, u := range users {
		if line := lineWith(out.String(), u); !strings.Contains(line, "allowed by policy "+pol.Str("id")) {
			t.Errorf("who-can output does not list %s with its policy:\n%s", u, out)
		}
	}
	if err := main.Run(context.Background(), []string{"who-can", "--url", daemontest.URL(m), "--action", "read"}); err == nil {
		t.Error("who-can without --resource: got no error, want a usage error")
	}
}

// lineWith is the first line of out that holds s ("" if none).
func lineWith(out, s string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
