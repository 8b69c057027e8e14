package iam

import "strconv"

// Policies: statements that allow or deny actions on resources, attached
// realm-wide to identities and groups. Their use in projects is in
// project.go; their evaluation in eval.go.

// Effect of a policy statement.
type Effect string

// Effects of a statement; a deny wins over any allow.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// Statement allows or denies actions on resources. An action is a name or
// "*"; a resource is an exact HRN or an HRN prefix ending in "*".
type Statement struct {
	Effect    Effect   `json:"effect"`
	Actions   []string `json:"actions"`
	Resources []string `json:"resources"`
}

// MaxActionLength bounds action names.
const MaxActionLength = 128

// --- commands ------------------------------------------------------------------

// CreatePolicy adds a policy of statements.
type CreatePolicy struct {
	ID         string
	Name       string
	Statements []Statement
}

func (c CreatePolicy) permission(r *Realm) (string, string) {
	return ActionCreatePolicy, RealmHRN(r.ID)
}

func (c CreatePolicy) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	if err := validStatements(c.Statements); err != nil {
		return err
	}
	return ValidID("id", c.ID)
}

func (c CreatePolicy) decide(s *State, r *Realm) ([]Event, error) {
	if err := checkStatements(s, r, c.Statements); err != nil {
		return nil, err
	}
	if r.Policies[c.ID] != nil {
		return nil, Errorf(EConflict, "policy %s already exists", c.ID)
	}
	return []Event{PolicyCreated{InRealm{r.ID}, c.ID, c.Name, c.Statements}}, nil
}

// validStatements judges a policy's statements alone; CreatePolicy and
// CreateProjectPolicy share it.
func validStatements(stmts []Statement) error {
	if len(stmts) == 0 {
		return FieldErrorf("statements", "at least one statement is needed")
	}
	for i, st := range stmts {
		f := "statements[" + strconv.Itoa(i) + "]"
		if st.Effect != Allow && st.Effect != Deny {
			return FieldErrorf(f+".effect", "must be \"allow\" or \"deny\"")
		}
		if len(st.Actions) == 0 {
			return FieldErrorf(f+".actions", "at least one action is needed")
		}
		if len(st.Resources) == 0 {
			return FieldErrorf(f+".resources", "at least one resource is needed")
		}
		for j, a := range st.Actions {
			if err := validAction(f+".actions["+strconv.Itoa(j)+"]", a); err != nil {
				return err
			}
		}
		for j, res := range st.Resources {
			if err := ValidatePattern(f+".resources["+strconv.Itoa(j)+"]", res); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkStatements judges statements against the realm and the limits:
// patterns within the realm, at most StatementsPerPolicy statements and
// PermissionsPerPolicy permissions.
func checkStatements(s *State, r *Realm, stmts []Statement) error {
	if len(stmts) > s.Limits.StatementsPerPolicy {
		return limitErr("a policy holds at most %d statements, this one %d", s.Limits.StatementsPerPolicy, len(stmts))
	}
	perms := 0
	for i, st := range stmts {
		perms += len(st.Actions) * len(st.Resources)
		for j, res := range st.Resources {
			if err := ValidateRealmPattern("statements["+strconv.Itoa(i)+"].resources["+strconv.Itoa(j)+"]", r.ID, res); err != nil {
				return err
			}
		}
	}
	if perms > s.Limits.PermissionsPerPolicy {
		return limitErr("a policy holds at most %d permissions (actions × resources), this one %d", s.Limits.PermissionsPerPolicy, perms)
	}
	return nil
}

func validAction(field, a string) error {
	if a == "*" {
		return nil
	}
	if a == "" || len(a) > MaxActionLength {
		return FieldErrorf(field, "an action is a name of 1 to %d characters, or *", MaxActionLength)
	}
	for i, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.')) {
			return FieldErrorf(field, "%q is not an action name (letters, then letters, digits, - _ : .)", a)
		}
	}
	return nil
}

// AttachPolicy attaches a policy realm-wide to an identity or a group.
type AttachPolicy struct{ Policy, Target string }

func (c AttachPolicy) permission(r *Realm) (string, string) {
	return ActionManagePolicy, PolicyHRN(r.ID, c.Policy)
}
func (c AttachPolicy) validate() error { return nil }
func (c AttachPolicy) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.policy("policy", c.Policy)
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
	if err := r.checkPermissions(s, c.Target, countPermissions(p)); err != nil {
		return nil, err
	}
	return []Event{PolicyAttached{InRealm{r.ID}, c.Policy, c.Target}}, nil
}

// DetachPolicy detaches a policy from an identity or a group.
type DetachPolicy struct{ Policy, Target string }

func (c DetachPolicy) permission(r *Realm) (string, string) {
	return ActionManagePolicy, PolicyHRN(r.ID, c.Policy)
}
func (c DetachPolicy) validate() error { return nil }
func (c DetachPolicy) decide(s *State, r *Realm) ([]Event, error) {
	p, err := r.policy("policy", c.Policy)
	if err != nil || !p.AttachedTo.Has(c.Target) {
		return nil, err
	}
	return []Event{PolicyDetached{InRealm{r.ID}, c.Policy, c.Target}}, nil
}

// --- events --------------------------------------------------------------------

// PolicyCreated creates a policy.
type PolicyCreated struct {
	InRealm
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Statements []Statement `json:"statements"`
}

// PolicyAttached attaches a policy realm-wide to an identity or a group.
type PolicyAttached struct {
	InRealm
	Policy string `json:"policy"`
	Target string `json:"target"`
}

// PolicyDetached detaches a policy from an identity or a group.
type PolicyDetached struct {
	InRealm
	Policy string `json:"policy"`
	Target string `json:"target"`
}

// EventType implements Event.
func (PolicyCreated) EventType() string { return "PolicyCreated" }

// EventType implements Event.
func (PolicyAttached) EventType() string { return "PolicyAttached" }

// EventType implements Event.
func (PolicyDetached) EventType() string { return "PolicyDetached" }

// --- apply ---------------------------------------------------------------------

func (e PolicyCreated) apply(s *State, touch Touch) {
	s.realms[e.Realm].Policies[e.ID] = &Policy{ID: e.ID, Name: e.Name, Statements: cloneStatements(e.Statements), num: names.intern(e.ID), gen: s.realms[e.Realm].gen}
	touch(Change{Kind: ChangePolicy, Realm: e.Realm, From: e.ID})
}

func (e PolicyAttached) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	pol := r.ownPolicy(e.Policy)
	// By the entities' numbers, as in MemberAdded.apply.
	if g := r.ownGroup(e.Target); g != nil {
		pol.AttachedTo.own(pol.gen).addNum(g.num)
		g.Policies.addNum(pol.num)
	} else {
		id := r.ownIdentity(e.Target)
		pol.AttachedTo.own(pol.gen).addNum(id.num)
		id.Policies.addNum(pol.num)
	}
	touch(Change{Kind: ChangeAttachment, Realm: e.Realm, From: e.Target, To: e.Policy, Edge: EdgeAdded})
}

func (e PolicyDetached) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	pol := r.ownPolicy(e.Policy)
	pol.AttachedTo.own(pol.gen).remove(e.Target)
	if g := r.ownGroup(e.Target); g != nil {
		g.Policies.remove(e.Policy)
	} else if id := r.ownIdentity(e.Target); id != nil {
		id.Policies.remove(e.Policy)
	}
	touch(Change{Kind: ChangeAttachment, Realm: e.Realm, From: e.Target, To: e.Policy, Edge: EdgeRemoved})
}
