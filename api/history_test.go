package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

type accessChangesAnswer struct {
	Changes []struct {
		Token  string `json:"token"`
		Actor  string `json:"actor"`
		Gained []struct {
			Effect, Action, Resource string
		} `json:"gained"`
		Lost []struct {
			Effect, Action, Resource string
		} `json:"lost"`
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	} `json:"changes"`
}

// TestAccessChanges: an identity's gains and losses between two tokens,
// each with the event that caused it, including what reaches it through a
// group (a membership, a deny attached to the group), read back from the log.
func TestAccessChanges(t *testing.T) {
	f := newFixture(t) // the fixture's user reads catalog/* through its group
	start := f.last
	deny := f.create("/v1/policies", map[string]any{"name": "no secrets", "statements": []any{
		map[string]any{"effect": "deny", "actions": []string{"read"}, "resources": []string{f.hrn("catalog/secret")}}}})
	f.write("PUT", "/v1/policies/"+deny+"/attachments/"+f.group, nil)
	f.write("DELETE", "/v1/groups/"+f.group+"/members/"+f.user, nil)

	var got accessChangesAnswer
	r := f.admin.Must(http.StatusOK, "GET", "/v1/identities/"+f.user+"/accessChanges?from="+start, nil)
	if err := json.Unmarshal([]byte(r.Raw), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Changes) != 2 {
		t.Fatalf("changes since %s: got %s, want 2 (the group's deny gained, then everything lost)", start, r.Raw)
	}
	gainDeny, leave := got.Changes[0], got.Changes[1]
	if len(gainDeny.Gained) != 1 || gainDeny.Gained[0].Effect != "deny" || gainDeny.Gained[0].Resource != f.hrn("catalog/secret") ||
		len(gainDeny.Events) != 1 || gainDeny.Events[0].Type != "PolicyAttached" || gainDeny.Actor == "" {
		t.Errorf("first change: got %+v, want the deny gained through the group, by PolicyAttached, with its actor", gainDeny)
	}
	if len(leave.Lost) != 2 || len(leave.Gained) != 0 || leave.Events[0].Type != "MemberRemoved" || leave.Token != f.last {
		t.Errorf("second change: got %+v, want the allow and the deny lost by MemberRemoved at %s", leave, f.last)
	}
	// The whole history holds the group membership's gain too.
	var all accessChangesAnswer
	r = f.admin.Must(http.StatusOK, "GET", "/v1/identities/"+f.user+"/accessChanges", nil)
	if err := json.Unmarshal([]byte(r.Raw), &all); err != nil || len(all.Changes) < 3 {
		t.Fatalf("whole history: got %s, want at least 3 changes", r.Raw)
	}
	// A window up to before the removal ends before it.
	var window accessChangesAnswer
	r = f.admin.Must(http.StatusOK, "GET", "/v1/identities/"+f.user+"/accessChanges?from="+start+"&to="+gainDeny.Token, nil)
	if err := json.Unmarshal([]byte(r.Raw), &window); err != nil || len(window.Changes) != 1 {
		t.Errorf("window to %s: got %s, want the one change", gainDeny.Token, r.Raw)
	}

	for name, tc := range map[string]struct {
		c      *daemontest.Client
		path   string
		status int
	}{
		"no right to read the user": {f.noRights, "/v1/identities/" + f.user + "/accessChanges", http.StatusForbidden},
		"bad from":                  {f.admin, "/v1/identities/" + f.user + "/accessChanges?from=nope", http.StatusBadRequest},
		"to beyond the head":        {f.admin, "/v1/identities/" + f.user + "/accessChanges?to=ct1.zzzzzz", http.StatusBadRequest},
		"from after to":             {f.admin, "/v1/identities/" + f.user + "/accessChanges?from=" + f.last + "&to=" + start, http.StatusBadRequest},
	} {
		if r := tc.c.Do("GET", tc.path, nil); r.Status != tc.status {
			t.Errorf("%s: got %d %s, want %d", name, r.Status, r.Raw, tc.status)
		}
	}
}
