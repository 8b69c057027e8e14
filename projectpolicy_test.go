package iam_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/iam-project/iam"
)

func readStatements(resources ...string) []iam.Statement {
	return []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: resources}}
}

// TestDecide_ProjectPolicyRefusals: what a project policy may name, and where
// it may be given, each refusal naming its field.
func TestDecide_ProjectPolicyRefusals(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.project("proja")
	w.project("projb")
	w.do("", iam.AddProjectResource{Project: "proja", HRN: data("a"), Relation: iam.RelationHome})
	w.do("", iam.AddProjectResource{Project: "projb", HRN: data("b"), Relation: iam.RelationHome})
	w.do("", iam.CreateProjectPolicy{Project: "projb", ID: "x", Name: "X", Statements: readStatements(data("b"))})
	tests := []struct {
		name        string
		cmd         iam.Command
		code, field string
	}{
		{"a resource outside the project", iam.CreateProjectPolicy{Project: "proja", ID: "y", Name: "Y", Statements: readStatements(data("a"), data("out"))}, iam.EInvalid, "statements[0].resources[1]"},
		{"another project's resource", iam.CreateProjectPolicy{Project: "proja", ID: "y", Name: "Y", Statements: readStatements(data("b"))}, iam.EInvalid, "statements[0].resources[0]"},
		{"a prefix pattern", iam.CreateProjectPolicy{Project: "proja", ID: "y", Name: "Y", Statements: readStatements(data("a*"))}, iam.EInvalid, "statements[0].resources[0]"},
		{"another realm's resource", iam.CreateProjectPolicy{Project: "proja", ID: "y", Name: "Y", Statements: readStatements("hrn:here:data::r2:a")}, iam.EInvalid, "statements[0].resources[0]"},
		{"an unknown project", iam.CreateProjectPolicy{Project: "nope", ID: "y", Name: "Y", Statements: readStatements(data("a"))}, iam.ENotFound, "project"},
		{"given in another project", iam.SetProjectMember{Project: "proja", Member: "u", Policies: []string{iam.ProjectPolicyHRN(realm, "projb", "x")}}, iam.EInvalid, "policies[0]"},
		{"an unknown project policy", iam.SetProjectMember{Project: "proja", Member: "u", Policies: []string{iam.ProjectPolicyHRN(realm, "proja", "x")}}, iam.ENotFound, "policies[0]"},
		{"not a project policy HRN", iam.SetProjectMember{Project: "proja", Member: "u", Policies: []string{data("a")}}, iam.EInvalid, "policies[0]"},
		{"a default of another project", iam.SetProjectDefaults{Project: "proja", DefaultMemberPolicies: []string{iam.ProjectPolicyHRN(realm, "projb", "x")}}, iam.EInvalid, "defaultMemberPolicies[0]"},
		{"attached realm-wide", iam.AttachPolicy{Policy: iam.ProjectPolicyHRN(realm, "projb", "x"), Target: "u"}, iam.ENotFound, "policy"},
		{"in a plan", iam.CreatePlan{ID: "plan", Name: "P", Policies: []string{iam.ProjectPolicyHRN(realm, "projb", "x")}}, iam.EInvalid, "policies[0]"},
		{"deleting an unknown one", iam.DeleteProjectPolicy{Project: "proja", ID: "x"}, iam.ENotFound, "policyId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.try("", tt.cmd)
			wantError(t, err, tt.code, tt.field)
		})
	}
}

// TestCheck_ProjectPolicy: a project policy reaches its project's resources
// through a membership (direct or through a group) under a check scoped to
// the project, never unscoped; its reason and the effective permissions name
// it by HRN.
func TestCheck_ProjectPolicy(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.user("v")
	w.group("g")
	w.do("", iam.AddMember{Group: "g", Identity: "v"})
	w.project("proja")
	w.do("", iam.AddProjectResource{Project: "proja", HRN: data("a"), Relation: iam.RelationHome})
	w.do("", iam.CreateProjectPolicy{Project: "proja", ID: "x", Name: "X", Statements: readStatements(data("a"))})
	hrn := iam.ProjectPolicyHRN(realm, "proja", "x")
	w.do("", iam.SetProjectMember{Project: "proja", Member: "u", Policies: []string{hrn}})
	w.do("", iam.SetProjectMember{Project: "proja", Member: "g", Policies: []string{hrn}})
	for _, who := range []string{"u", "v"} {
		d := w.check(who, "read", data("a"), "proja")
		wantAllowed(t, d, true)
		if !strings.Contains(d.Reason(), hrn) {
			t.Errorf("%s: reason %q, want it to name %s", who, d.Reason(), hrn)
		}
		wantAllowed(t, w.check(who, "read", data("a"), ""), false)
	}
	perms, err := w.s.Permissions(realm, "u")
	if err != nil || len(perms) != 1 || perms[0].Source.ID != hrn || perms[0].Source.Project != "proja" {
		t.Errorf("permissions of u: got %+v %v, want one from %s in project proja", perms, err, hrn)
	}
}

// TestDecide_PermissionsPerIdentity: an identity or group is assigned at most
// 100,000 permissions (HERE's limit): actions × resources of every statement
// of the realm policies attached to it, of its plans' policies and of its
// policies in each project it is a direct member of. What reaches a user
// through a group counts for the group.
func TestDecide_PermissionsPerIdentity(t *testing.T) {
	w := newWorld(t)
	if got := w.s.Limits.PermissionsPerIdentity; got != 100_000 {
		t.Fatalf("default PermissionsPerIdentity: got %d, want 100000", got)
	}
	w.user("u")
	w.group("g")
	w.do("", iam.AddMember{Group: "g", Identity: "u"})
	// 100 permissions each: 10 actions × 10 resources.
	actions, resources := ids("act", 10), make([]string, 10)
	for i := range resources {
		resources[i] = data(fmt.Sprintf("r%d", i))
	}
	hundred := []iam.Statement{{Effect: iam.Allow, Actions: actions, Resources: resources}}
	for i := range 1001 {
		w.do("", iam.CreatePolicy{ID: fmt.Sprintf("p%04d", i), Name: "P", Statements: hundred})
	}
	for i := range 998 {
		w.do("", iam.AttachPolicy{Policy: fmt.Sprintf("p%04d", i), Target: "u"})
	}
	w.do("", iam.CreatePlan{ID: "plan", Name: "Plan", Policies: []string{"p0998"}})
	w.do("", iam.AttachPlan{Plan: "plan", Target: "u"}) // 99,900
	w.project("proja")
	w.do("", iam.SetProjectMember{Project: "proja", Member: "u", Policies: []string{"p0999"}}) // 100,000
	for _, cmd := range []iam.Command{
		iam.AttachPolicy{Policy: "p1000", Target: "u"},
		iam.SetProjectMember{Project: "proja", Member: "u", Policies: []string{"p0999", "p1000"}},
	} {
		_, err := w.try("", cmd)
		wantError(t, err, iam.ELimitExceeded, "")
		wantMessage(t, err, "at most 100000 permissions")
	}
	// The group is assigned its own, apart from its member's.
	w.do("", iam.AttachPolicy{Policy: "p1000", Target: "g"})
	// Taking some away makes room again.
	w.do("", iam.DetachPlan{Plan: "plan", Target: "u"})
	w.do("", iam.AttachPolicy{Policy: "p1000", Target: "u"})
}
