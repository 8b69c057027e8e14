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

// RealmCreated creates a realm.
type RealmCreated struct {
	InRealm
	Name string `json:"name"`
}

// EventType implements Event.
func (RealmCreated) EventType() string { return "RealmCreated" }

func (e RealmCreated) apply(s *State, touch Touch) {
	s.realms[e.Realm] = &Realm{
		ID: e.Realm, Name: e.Name,
		Identities: map[string]*Identity{}, Groups: map[string]*Group{}, Policies: map[string]*Policy{},
		Projects: map[string]*Project{}, Resources: map[string]*ResourcePlacement{}, emails: map[string]string{},
		roleCache:   roleStatementsFor(e.Realm),
		Invitations: map[string]*Invitation{}, authCodes: map[string]string{}, resetTokens: map[string]string{}, invitationTokens: map[string]string{},
	}
	touch(Change{Kind: ChangeRealm, Realm: e.Realm})
}
