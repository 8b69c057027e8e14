package iam

// A realm is one organization: every other entity lives in exactly one.

// CreateRealm creates a realm; only the system may.
type CreateRealm struct {
	ID   string
	Name string
}

func (c CreateRealm) permission(*Realm) (string, string) { return "", "" }
func (c CreateRealm) validate() error {
	if err := ValidID("realm", c.ID); err != nil {
		return err
	}
	return validName("name", c.Name)
}

// decide is never called: Decide judges CreateRealm itself, as there is no
// realm yet to judge it against.
func (c CreateRealm) decide(*State, *Realm) ([]Event, error) { return nil, nil }

// RealmCreated creates a realm. System marks the system realm: the first
// realm created (the bootstrap realm), whose operators run the whole
// database (digests, snapshots). Decide sets it on every new realm; nil (an
// entry written before it was recorded) means "the first realm applied".
type RealmCreated struct {
	InRealm
	Name   string `json:"name"`
	System *bool  `json:"system,omitempty"`
}

// EventType implements Event.
func (RealmCreated) EventType() string { return "RealmCreated" }

func (e RealmCreated) apply(s *State, touch Touch) {
	system := len(s.realms) == 0
	if e.System != nil {
		system = *e.System
	}
	s.realms[e.Realm] = &Realm{
		ID: e.Realm, Name: e.Name, System: system, gen: s.gen,
		Groups: map[string]*Group{}, Policies: map[string]*Policy{},
		Projects: map[string]*Project{}, Resources: map[string]*ResourcePlacement{},
		roleCache: roleStatementsFor(e.Realm), manages: map[string]map[ManagedRef]struct{}{},
		sharedWith:  map[string]set{},
		Invitations: map[string]*Invitation{}, authCodes: map[string]string{}, refreshTokens: map[string]refreshRef{}, resetTokens: map[string]string{}, invitationTokens: map[string]string{},
	}
	touch(Change{Kind: ChangeRealm, Realm: e.Realm})
}

// SystemRealm reports whether realm is the system realm: the first realm
// created (the bootstrap realm). Its operators (ActionManageReplicas on it)
// act on the whole database; no other realm's may.
func (s *State) SystemRealm(realm string) bool {
	r := s.realms[realm]
	return r != nil && r.System
}
