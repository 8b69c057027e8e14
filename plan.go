package iam

import (
	"slices"
	"strconv"
)

// Plans (issue 10, item 3): a named set of realm policies, attached to
// identities and groups like a policy. As HERE IAM has it, what a plan
// grants reaches resources outside projects only, like realm policies: its
// policies are evaluated with the realm-wide ones (eval.go).

// Plan is a named set of realm policies.
type Plan struct {
	ID         string
	Name       string
	Policies   []string
	AttachedTo set    // identities and groups
	gen        uint64 // cow.go
}

// PlanHRN is the HRN of plan id of realm.
func PlanHRN(realm, id string) string {
	return "hrn:here:authorization::" + realm + ":plan/" + id
}

// planPermissions counts the permissions a plan's policies hold.
func (r *Realm) planPermissions(p *Plan) int {
	if p == nil {
		return 0
	}
	n := 0
	for _, pid := range p.Policies {
		if pol := r.Policies[pid]; pol != nil {
			n += countPermissions(pol)
		}
	}
	return n
}

func (r *Realm) plan(field, id string) (*Plan, error) {
	if p := r.Plans[id]; p != nil {
		return p, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "plan " + id + " not found"}
}

// --- commands ------------------------------------------------------------------

// CreatePlan adds a plan of existing realm policies. Making one needs the
// right to create policies: a plan grants nothing its policies do not.
type CreatePlan struct {
	ID       string
	Name     string
	Policies []string
}

func (c CreatePlan) permission(r *Realm) (string, string) {
	return ActionCreatePolicy, RealmHRN(r.ID)
}
func (c CreatePlan) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if len(c.Policies) == 0 {
		return FieldErrorf("policies", "at least one policy is needed")
	}
	seen := set{}
	for i, p := range c.Policies {
		f := "policies[" + strconv.Itoa(i) + "]"
		if err := ValidID(f, p); err != nil {
			return err
		}
		if seen.Has(p) {
			return FieldErrorf(f, "policy %s is listed twice", p)
		}
		seen.add(p)
	}
	return ValidID("id", c.ID)
}
func (c CreatePlan) decide(s *State, r *Realm) ([]Event, error) {
	for i, p := range c.Policies {
		if _, err := r.policy("policies["+strconv.Itoa(i)+"]", p); err != nil {
			return nil, err
		}
	}
	if r.Plans[c.ID] != nil {
		return nil, Errorf(EConflict, "plan %s already exists", c.ID)
	}
	return []Event{PlanCreated{InRealm{r.ID}, c.ID, c.Name, c.Policies}}, nil
}

// AttachPlan attaches a plan to an identity or a group.
type AttachPlan struct{ Plan, Target string }

func (c AttachPlan) permission(r *Realm) (string, string) {
	return ActionManagePolicy, PlanHRN(r.ID, c.Plan)
}
func (c AttachPlan) validate() error { return nil }
func (c AttachPlan) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.plan("plan", c.Plan)
	if err != nil {
		return nil, err
	}
	if r.Groups[c.Target] == nil {
		if _, err := r.identity("target", c.Target); err != nil {
			return nil, &Error{Code: ENotFound, Field: "target", Message: "no identity or group " + c.Target}
		}
	}
	if p.AttachedTo.Has(c.Target) {
		return nil, nil
	}
	if err := r.checkPermissions(s, c.Target, r.planPermissions(p)); err != nil {
		return nil, err
	}
	return []Event{PlanAttached{InRealm{r.ID}, c.Plan, c.Target}}, nil
}

// DetachPlan detaches a plan from an identity or a group.
type DetachPlan struct{ Plan, Target string }

func (c DetachPlan) permission(r *Realm) (string, string) {
	return ActionManagePolicy, PlanHRN(r.ID, c.Plan)
}
func (c DetachPlan) validate() error { return nil }
func (c DetachPlan) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.plan("plan", c.Plan)
	if err != nil || !p.AttachedTo.Has(c.Target) {
		return nil, err
	}
	return []Event{PlanDetached{InRealm{r.ID}, c.Plan, c.Target}}, nil
}

// --- events --------------------------------------------------------------------

// PlanCreated creates a plan.
type PlanCreated struct {
	InRealm
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Policies []string `json:"policies"`
}

// PlanAttached attaches a plan to an identity or a group.
type PlanAttached struct {
	InRealm
	Plan   string `json:"plan"`
	Target string `json:"target"`
}

// PlanDetached detaches a plan from an identity or a group.
type PlanDetached struct {
	InRealm
	Plan   string `json:"plan"`
	Target string `json:"target"`
}

// EventType implements Event.
func (PlanCreated) EventType() string { return "PlanCreated" }

// EventType implements Event.
func (PlanAttached) EventType() string { return "PlanAttached" }

// EventType implements Event.
func (PlanDetached) EventType() string { return "PlanDetached" }

// --- apply ---------------------------------------------------------------------

func (e PlanCreated) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	if r.Plans == nil {
		r.Plans = map[string]*Plan{}
	}
	// A copy, as IdentityCreated.identity takes of redirect URIs.
	r.Plans[e.ID] = &Plan{ID: e.ID, Name: e.Name, Policies: slices.Clone(e.Policies), gen: r.gen}
	touch(Change{Kind: ChangePlan, Realm: e.Realm, From: e.ID})
}

// plansOf points at the plans set of an identity or a group.
func (r *Realm) plansOf(target string) *set {
	if g := r.ownGroup(target); g != nil {
		return &g.Plans
	}
	return &r.ownIdentity(target).Plans
}

func (e PlanAttached) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	p := r.ownPlan(e.Plan)
	p.AttachedTo.own(p.gen).add(e.Target)
	r.plansOf(e.Target).add(e.Plan)
	touch(Change{Kind: ChangePlanAttachment, Realm: e.Realm, From: e.Target, To: e.Plan})
}

func (e PlanDetached) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	p := r.ownPlan(e.Plan)
	p.AttachedTo.own(p.gen).remove(e.Target)
	r.plansOf(e.Target).remove(e.Plan)
	touch(Change{Kind: ChangePlanAttachment, Realm: e.Realm, From: e.Target, To: e.Plan})
}
