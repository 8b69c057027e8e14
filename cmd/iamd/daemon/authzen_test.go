package daemon_test

import (
	"net/http"
	"testing"
)

// TestMultiRegion_AuthZEN: a hub and two region processes; each region
// answers AuthZEN itself, from its own replica (never relayed to the hub),
// as its /v1/check answers the same checks.
func TestMultiRegion_AuthZEN(t *testing.T) {
	regions := []string{"eu-west", "us-east"}
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: regions})
	realm := top.hubs[0].Bootstrap.Realm
	appID, _, _, resource, tok := setupSubject(t, top.admin("eu-west"), realm)
	fresh := map[string]any{"mode": "at_least_as_fresh", "token": tok, "waitMs": 10000}
	items := []struct{ action, resource string }{{"read", resource}, {"write", resource}, {"read", resource + "-other"}}
	for _, region := range regions {
		admin := top.admin(region)
		var evals []any
		for _, it := range items {
			evals = append(evals, map[string]any{"action": map[string]any{"name": it.action}, "resource": map[string]any{"type": "catalog", "id": it.resource}})
		}
		batch := admin.Must(http.StatusOK, "POST", "/access/v1/evaluations", map[string]any{
			"subject": map[string]any{"type": "app", "id": appID}, "context": map[string]any{"consistency": fresh}, "evaluations": evals})
		ctx, _ := batch.Body["context"].(map[string]any)
		answers, _ := batch.Body["evaluations"].([]any)
		if ctx["region"] != region || len(answers) != len(items) {
			t.Fatalf("%s: got %s, want %d answers from %s", region, batch.Raw, len(items), region)
		}
		for i, it := range items {
			check := admin.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"subject": appID, "action": it.action, "resource": it.resource, "consistency": fresh})
			one := admin.Must(http.StatusOK, "POST", "/access/v1/evaluation", map[string]any{"subject": map[string]any{"type": "app", "id": appID},
				"action": map[string]any{"name": it.action}, "resource": map[string]any{"type": "catalog", "id": it.resource}, "context": map[string]any{"consistency": fresh}})
			got := answers[i].(map[string]any)
			reason := got["context"].(map[string]any)["reason"]
			oneCtx, _ := one.Body["context"].(map[string]any)
			if got["decision"] != check.Body["allowed"] || reason != check.Str("reason") || one.Body["decision"] != check.Body["allowed"] ||
				oneCtx["reason"] != check.Str("reason") || oneCtx["region"] != region || check.Str("region") != region {
				t.Errorf("%s %s %s: boxcar %v, evaluation %s, check %s: want the same answer from %s", region, it.action, it.resource, got, one.Raw, check.Raw, region)
			}
		}
		for i, want := range []bool{true, false, false} {
			if answers[i].(map[string]any)["decision"] != want {
				t.Errorf("%s item %d: got %v, want decision %v", region, i, answers[i], want)
			}
		}
	}
}
