package iam

// Groups and their members. Policies attached to a group (policy.go) and
// its project memberships (project.go) apply to every member.

// --- commands ------------------------------------------------------------------

// CreateGroup adds a group; Creator becomes its first group admin (Decide
// sets it to the actor).
type CreateGroup struct{ ID, Name, Creator string }

func (c CreateGroup) createdBy(actor string) Command { c.Creator = actor; return c }

func (c CreateGroup) permission(r *Realm) (string, string) {
	return ActionCreateGroup, RealmHRN(r.ID)
}
func (c CreateGroup) validate() error {
	if err := validName("name", c.Name); err != nil {
		return err
	}
	return ValidID("id", c.ID)
}
func (c CreateGroup) decide(s *State, r *Realm) ([]Event, error) {
	if r.Groups[c.ID] != nil || r.Identities.Get(c.ID) != nil {
		return nil, Errorf(EConflict, "an identity or group %s already exists", c.ID)
	}
	first, err := r.firstManager(s, ManagedRef{ManagedGroup, c.ID}, c.Creator)
	if err != nil {
		return nil, err
	}
	return append([]Event{GroupCreated{InRealm{r.ID}, c.ID, c.Name}}, first...), nil
}

// AddMember puts a user or an app into a group, within both the group's
// member limit and the identity's group limit.
type AddMember struct{ Group, Identity string }

func (c AddMember) permission(r *Realm) (string, string) {
	return ActionManageGroup, GroupHRN(r.ID, c.Group)
}
func (c AddMember) validate() error { return nil }
func (c AddMember) decide(s *State, r *Realm) ([]Event, error) {
	g, err := r.group("group", c.Group)
	if err != nil {
		return nil, err
	}
	id, err := r.identity("identityId", c.Identity)
	if err != nil || g.Members.Has(c.Identity) {
		return nil, err
	}
	if g.Members.Len() >= s.Limits.MembersPerGroup {
		return nil, limitErr("a group has at most %d members", s.Limits.MembersPerGroup)
	}
	if id.Groups.Len() >= s.Limits.GroupsPerIdentity {
		return nil, limitErr("an identity belongs to at most %d groups", s.Limits.GroupsPerIdentity)
	}
	return []Event{MemberAdded{InRealm{r.ID}, c.Group, c.Identity}}, nil
}

// RemoveMember takes an identity out of a group.
type RemoveMember struct{ Group, Identity string }

func (c RemoveMember) permission(r *Realm) (string, string) {
	return ActionManageGroup, GroupHRN(r.ID, c.Group)
}
func (c RemoveMember) validate() error { return nil }
func (c RemoveMember) decide(s *State, r *Realm) ([]Event, error) {
	g, err := r.group("group", c.Group)
	if err != nil || !g.Members.Has(c.Identity) {
		return nil, err
	}
	return []Event{MemberRemoved{InRealm{r.ID}, c.Group, c.Identity}}, nil
}

// --- events --------------------------------------------------------------------

// GroupCreated creates a group.
type GroupCreated struct {
	InRealm
	ID   string `json:"id"`
	Name string `json:"name"`
}

// MemberAdded puts an identity into a group.
type MemberAdded struct {
	InRealm
	Group    string `json:"group"`
	Identity string `json:"identity"`
}

// MemberRemoved takes an identity out of a group.
type MemberRemoved struct {
	InRealm
	Group    string `json:"group"`
	Identity string `json:"identity"`
}

// EventType implements Event.
func (GroupCreated) EventType() string { return "GroupCreated" }

// EventType implements Event.
func (MemberAdded) EventType() string { return "MemberAdded" }

// EventType implements Event.
func (MemberRemoved) EventType() string { return "MemberRemoved" }

// --- apply ---------------------------------------------------------------------

func (e GroupCreated) apply(s *State, touch Touch) {
	s.realms[e.Realm].Groups[e.ID] = &Group{ID: e.ID, Name: e.Name, num: names.intern(e.ID), gen: s.realms[e.Realm].gen}
	touch(Change{Kind: ChangeGroup, Realm: e.Realm, From: e.ID})
}

func (e MemberAdded) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	g, id := r.ownGroup(e.Group), r.ownIdentity(e.Identity)
	// By the entities' numbers, interned when they were created: looking
	// the identity's id up again in the process-wide table was a cache miss
	// per edge, and replay's largest cost.
	g.Members.own(g.gen).addNum(id.num)
	id.Groups.addNum(g.num)
	touch(Change{Kind: ChangeMember, Realm: e.Realm, From: e.Group, To: e.Identity, Edge: EdgeAdded})
}

func (e MemberRemoved) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	g := r.ownGroup(e.Group)
	g.Members.own(g.gen).remove(e.Identity)
	r.ownIdentity(e.Identity).Groups.remove(e.Group)
	touch(Change{Kind: ChangeMember, Realm: e.Realm, From: e.Group, To: e.Identity, Edge: EdgeRemoved})
}
