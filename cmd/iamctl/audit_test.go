package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/iam-project/iam/api/client"
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

// TestHistoryAndSimulate runs `iamctl history` and `iamctl simulate`
// against a real iamd: a policy attached shows as a gain in the user's
// history; a proposed detachment shows the loss, and writes nothing.
func TestHistoryAndSimulate(t *testing.T) {
	m := daemontest.Start(t, "")
	admin := daemontest.AdminClient(t, m)
	resource := "hrn:here:data::" + m.Bootstrap.Realm + ":catalog-1"
	u := admin.Must(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": "ann@example.com", "name": "Ann"}).Str("id")
	pol := admin.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": "readers",
		"statements": []map[string]any{{"effect": "allow", "actions": []string{"read"}, "resources": []string{resource}}}}).Str("id")
	att := admin.Must(http.StatusOK, "PUT", "/v1/policies/"+pol+"/attachments/"+u, nil).Str("consistencyToken")
	creds := []string{"--url", daemontest.URL(m), "--client-id", m.Bootstrap.ClientID, "--client-secret", m.Bootstrap.ClientSecret, "--token-url", m.Bootstrap.TokenURL}

	main, out := testMain(nil)
	if err := main.Run(context.Background(), append([]string{"history", u, "-o", "json"}, creds...)); err != nil {
		t.Fatalf("history: %v", err)
	}
	var hist struct {
		Changes []client.AccessChange `json:"changes"`
	}
	if err := json.Unmarshal(out.Bytes(), &hist); err != nil || len(hist.Changes) != 1 || hist.Changes[0].Token != att ||
		len(hist.Changes[0].Gained) != 1 || hist.Changes[0].Gained[0].Resource != resource {
		t.Fatalf("history: got %s (%v), want one gain of read on %s at %s", out, err, resource, att)
	}

	main, out = testMain(nil)
	main.Stdin = strings.NewReader(`{"changes": [{"method": "DELETE", "path": "/v1/policies/` + pol + `/attachments/` + u + `"}],
		"checks": [{"subject": "` + u + `", "action": "read", "resource": "` + resource + `"}]}`)
	if err := main.Run(context.Background(), append([]string{"simulate", "-o", "json"}, creds...)); err != nil {
		t.Fatalf("simulate: %v", err)
	}
	var sim client.SimulateResponse
	if err := json.Unmarshal(out.Bytes(), &sim); err != nil || len(sim.Affected) != 1 || sim.Affected[0].IdentityID != u ||
		len(sim.Affected[0].Lost) != 1 || len(sim.Checks) != 1 || !sim.Checks[0].Before || sim.Checks[0].After {
		t.Fatalf("simulate: got %s (%v), want %s losing read, the check allowed before and denied after", out, err, u)
	}
	// Nothing was written: the user still reads.
	r := admin.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": u, "action": "read", "resource": resource,
		"consistency": map[string]any{"mode": "fully_consistent"}})
	if r.Body["allowed"] != true {
		t.Fatalf("after the dry run: got %s, want still allowed", r.Raw)
	}
}
