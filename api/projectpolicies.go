package api

import (
	"encoding/json"
	"net/http"

	iam "github.com/iam-project/iam"
)

// projectPolicyRoutes registers project policies, a project's default
// member policies and plans (issue 10, item 3). Writes on a project are its
// admins' (manageProject on the project's HRN); plans are managed as
// policies are (createPolicy on the realm, managePolicy on the plan's HRN).
func (s *Server) projectPolicyRoutes(h handle) {
	h("POST /v1/projects/{id}/policies", false, s.createProjectPolicy)
	h("GET /v1/projects/{id}/policies", true, s.listProjectPolicies)
	h("DELETE /v1/projects/{id}/policies/{policyId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.DeleteProjectPolicy{Project: r.PathValue("id"), ID: r.PathValue("policyId")}
	}))
	h("PATCH /v1/projects/{id}", false, s.patchProject)
	h("POST /v1/plans", false, s.createPlan)
	h("GET /v1/plans/{id}", true, s.getPlan)
	h("PUT /v1/plans/{id}/attachments/{targetId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.AttachPlan{Plan: r.PathValue("id"), Target: r.PathValue("targetId")}
	}))
	h("DELETE /v1/plans/{id}/attachments/{targetId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.DetachPlan{Plan: r.PathValue("id"), Target: r.PathValue("targetId")}
	}))
}

type projectPolicyView struct {
	ID         string          `json:"id"`
	HRN        string          `json:"hrn"`
	Name       string          `json:"name"`
	Statements []iam.Statement `json:"statements"`
}

func (s *Server) createProjectPolicy(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.CreateProjectPolicy{Project: r.PathValue("id")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	var in struct {
		Name       string          `json:"name"`
		Statements []iam.Statement `json:"statements"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd.ID, cmd.Name, cmd.Statements = c.newID("pp", 12, "projectPolicy"), in.Name, in.Statements
	hrn := iam.ProjectPolicyHRN(c.p.Realm, cmd.Project, cmd.ID)
	return c.run(cmd, http.StatusCreated, map[string]any{"id": cmd.ID, "hrn": hrn, "name": in.Name, "statements": in.Statements})
}

// listProjectPolicies serves GET /v1/projects/{id}/policies: the project's
// own policies and its default member policies, for whoever may read it.
func (s *Server) listProjectPolicies(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, iam.ProjectHRN(p.Realm, id), ""); err != nil {
		return err
	}
	return s.read(w, r, func(_ *iam.State, realm *iam.Realm) (any, error) {
		proj := realm.Projects[id]
		if proj == nil {
			return nil, &iam.Error{Code: iam.ENotFound, Field: "id", Message: "project " + id + " not found"}
		}
		items := make([]projectPolicyView, 0, len(proj.Policies))
		for _, pid := range sortedKeys(proj.Policies) {
			pol := proj.Policies[pid]
			items = append(items, projectPolicyView{pid, iam.ProjectPolicyHRN(realm.ID, id, pid), pol.Name, pol.Statements})
		}
		defaults := proj.DefaultMemberPolicies
		if defaults == nil {
			defaults = []string{}
		}
		return map[string]any{"id": id, "items": items, "defaultMemberPolicies": defaults}, nil
	})
}

// patchProject serves PATCH /v1/projects/{id}: its settings, today the
// policies given to a member added without policies.
func (s *Server) patchProject(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.SetProjectDefaults{Project: r.PathValue("id")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	var in struct {
		DefaultMemberPolicies json.RawMessage `json:"defaultMemberPolicies"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	// Absent is refused rather than read as "none": a PATCH that names
	// nothing would otherwise clear the defaults.
	if in.DefaultMemberPolicies == nil {
		return iam.FieldErrorf("defaultMemberPolicies", "is required: a list of policy ids or project policy HRNs ([] for none)")
	}
	if err := json.Unmarshal(in.DefaultMemberPolicies, &cmd.DefaultMemberPolicies); err != nil {
		return iam.FieldErrorf("defaultMemberPolicies", "must be a list of policy ids or project policy HRNs")
	}
	return c.run(cmd, http.StatusOK, map[string]any{"id": cmd.Project, "defaultMemberPolicies": orEmpty(cmd.DefaultMemberPolicies)})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type planView struct {
	ID         string   `json:"id"`
	HRN        string   `json:"hrn"`
	Name       string   `json:"name"`
	Policies   []string `json:"policies"`
	AttachedTo []string `json:"attachedTo"`
}

func (s *Server) createPlan(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreatePlan{})
	if err != nil {
		return err
	}
	var in struct {
		Name     string   `json:"name"`
		Policies []string `json:"policies"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd := iam.CreatePlan{ID: c.newID("plan", 16, "plan"), Name: in.Name, Policies: in.Policies}
	return c.run(cmd, http.StatusCreated, map[string]any{"id": cmd.ID, "hrn": iam.PlanHRN(c.p.Realm, cmd.ID), "name": in.Name, "policies": orEmpty(in.Policies)})
}

func (s *Server) getPlan(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, iam.PlanHRN(p.Realm, id), ""); err != nil {
		return err
	}
	return s.read(w, r, func(_ *iam.State, realm *iam.Realm) (any, error) {
		pl := realm.Plans[id]
		if pl == nil {
			return nil, &iam.Error{Code: iam.ENotFound, Field: "id", Message: "plan " + id + " not found"}
		}
		return planView{pl.ID, iam.PlanHRN(realm.ID, pl.ID), pl.Name, pl.Policies, pl.AttachedTo.Sorted()}, nil
	})
}
