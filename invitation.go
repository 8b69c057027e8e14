package iam

import "time"

// Invitations: a person, known by a sealed email, is invited to a realm with
// roles and groups, and becomes a user on accepting. The invitation token
// appears in the log only as its SHA-256 hash.

// Limits of an invitation, as HERE IAM publishes them.
const (
	MaxInvitationRoles  = 5
	MaxInvitationGroups = 5
)

// Invitation asks a person, known by a sealed email, to join a realm.
type Invitation struct {
	ID         string    `json:"-"`
	UserID     string    `json:"userId"` // the id the user gets on acceptance
	EmailIndex string    `json:"emailIndex"`
	Sealed     []byte    `json:"sealed,omitempty"`
	Roles      []string  `json:"roles,omitempty"`
	Groups     []string  `json:"groups,omitempty"`
	TokenHash  string    `json:"tokenHash"`
	ExpiresAt  time.Time `json:"expiresAt"`
	InvitedBy  string    `json:"invitedBy,omitempty"`
	Accepted   bool      `json:"accepted,omitempty"`
	gen        uint64    // cow.go
}

// Invitation returns an invitation of realm by id, or nil.
func (s *State) Invitation(realm, id string) *Invitation {
	if r := s.realms[realm]; r != nil {
		return r.Invitations[id]
	}
	return nil
}

// InvitationByToken finds an invitation by the hash of its token.
func (s *State) InvitationByToken(realm, h string) *Invitation {
	if r := s.realms[realm]; r != nil {
		return r.Invitations[r.invitationTokens[h]]
	}
	return nil
}

// PendingInvitations returns the ids of realm's invitations not accepted
// yet for the email whose blind index is emailIndex, expired ones included
// (renewing them is what the invitee asks for), sorted.
func (s *State) PendingInvitations(realm, emailIndex string) []string {
	r := s.realms[realm]
	if r == nil {
		return nil
	}
	var ids []string
	for _, id := range sortedKeys(r.Invitations) {
		if inv := r.Invitations[id]; !inv.Accepted && inv.EmailIndex == emailIndex {
			ids = append(ids, id)
		}
	}
	return ids
}

// --- commands ------------------------------------------------------------------

// CreateInvitation invites a person by (sealed) email with at most 5 roles
// and 5 groups. OrgAdmin and OrgInviter may (createUser on the realm), with
// only the roles and groups the inviter may grant (Decide sets InvitedBy to
// the actor).
type CreateInvitation struct {
	ID         string
	Invitation Invitation
}

func (c CreateInvitation) permission(r *Realm) (string, string) {
	return ActionCreateUser, RealmHRN(r.ID)
}
func (c CreateInvitation) validate() error {
	inv := c.Invitation
	if len(inv.Roles) > MaxInvitationRoles {
		return &Error{Code: ELimitExceeded, Field: "roles", Message: "limit exceeded: an invitation carries at most 5 roles"}
	}
	if len(inv.Groups) > MaxInvitationGroups {
		return &Error{Code: ELimitExceeded, Field: "groups", Message: "limit exceeded: an invitation carries at most 5 groups"}
	}
	for _, role := range inv.Roles {
		if !IsRole(role) {
			return FieldErrorf("roles", "%q is not a role (see GET /v1/roles)", role)
		}
	}
	if inv.EmailIndex == "" || inv.TokenHash == "" || inv.ExpiresAt.IsZero() {
		return Errorf(EInternal, "an invitation needs an email index, a token hash and an expiry")
	}
	if err := ValidID("userId", inv.UserID); err != nil {
		return err
	}
	return ValidID("id", c.ID)
}
func (c CreateInvitation) decide(s *State, r *Realm) ([]Event, error) {
	if r.Invitations[c.ID] != nil {
		return nil, Errorf(EConflict, "invitation %s already exists", c.ID)
	}
	if r.Identities.Get(c.Invitation.UserID) != nil {
		return nil, Errorf(EConflict, "identity %s already exists", c.Invitation.UserID)
	}
	if r.emails.Get(c.Invitation.EmailIndex) != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	if r.invitationTokens[c.Invitation.TokenHash] != "" {
		return nil, Errorf(EConflict, "invitation token collision; try again")
	}
	for _, g := range c.Invitation.Groups {
		if _, err := r.group("groups", g); err != nil {
			return nil, err
		}
	}
	if err := c.inviterMayGrant(s, r); err != nil {
		return nil, err
	}
	inv := c.Invitation
	inv.ID, inv.Accepted = "", false
	return []Event{InvitationCreated{InRealm{r.ID}, c.ID, inv}}, nil
}

// inviterMayGrant refuses an invitation carrying a role or a group its
// inviter could not give the invitee itself (an OrgInviter asking for
// OrgAdmin, say): acceptance grants them as the system, so this is the one
// place they are judged. The error names the role or group. An invitation
// of the system (no inviter) carries what it asks.
func (c CreateInvitation) inviterMayGrant(s *State, r *Realm) error {
	inv := c.Invitation
	if inv.InvitedBy == "" {
		return nil
	}
	for _, role := range inv.Roles {
		if err := Authorize(s, r.ID, inv.InvitedBy, GrantRole{Identity: inv.UserID, Role: role}); err != nil {
			return &Error{Code: EPermissionDenied, Field: "roles", Message: "the inviter may not grant the role " + role + ": " + ErrorMessage(err)}
		}
	}
	for _, g := range inv.Groups {
		if err := Authorize(s, r.ID, inv.InvitedBy, AddMember{Group: g, Identity: inv.UserID}); err != nil {
			return &Error{Code: EPermissionDenied, Field: "groups", Message: "the inviter may not add members to the group " + g + ": " + ErrorMessage(err)}
		}
	}
	return nil
}

// RenewInvitation is "request again": a fresh token and expiry; the old token
// stops working.
type RenewInvitation struct {
	ID        string
	TokenHash string
	ExpiresAt time.Time
}

func (c RenewInvitation) permission(r *Realm) (string, string) {
	return ActionCreateUser, RealmHRN(r.ID)
}
func (c RenewInvitation) validate() error {
	if c.TokenHash == "" || c.ExpiresAt.IsZero() {
		return Errorf(EInternal, "a renewal needs a token hash and an expiry")
	}
	return nil
}
func (c RenewInvitation) decide(s *State, r *Realm) ([]Event, error) {
	inv := r.Invitations[c.ID]
	if inv == nil {
		return nil, &Error{Code: ENotFound, Field: "id", Message: "invitation " + c.ID + " not found"}
	}
	if inv.Accepted {
		return nil, Errorf(EConflict, "invitation %s was accepted already", c.ID)
	}
	if r.invitationTokens[c.TokenHash] != "" {
		return nil, Errorf(EConflict, "invitation token collision; try again")
	}
	return []Event{InvitationRenewed{InRealm{r.ID}, c.ID, c.TokenHash, c.ExpiresAt}}, nil
}

// AcceptInvitation creates the invited user, with the invitation's roles and
// the groups that still exist and have room. Sealed holds the email and the
// name the person chose, sealed under the same data key as the invitation.
type AcceptInvitation struct {
	systemOnly
	TokenHash    string
	Sealed       []byte
	PasswordHash string
	At           time.Time
}

func (c AcceptInvitation) validate() error {
	if len(c.Sealed) == 0 {
		return Errorf(EInternal, "acceptance needs sealed data")
	}
	return validPasswordHash(c.PasswordHash)
}
func (c AcceptInvitation) decide(s *State, r *Realm) ([]Event, error) {
	invID := r.invitationTokens[c.TokenHash]
	inv := r.Invitations[invID]
	if inv == nil || inv.Accepted || inv.TokenHash != c.TokenHash || !inv.ExpiresAt.After(c.At) {
		return nil, &Error{Code: EInvalid, Field: "token", Message: "the invitation is unknown, used or expired"}
	}
	if r.Identities.Get(inv.UserID) != nil {
		return nil, Errorf(EConflict, "identity %s already exists", inv.UserID)
	}
	if r.emails.Get(inv.EmailIndex) != "" {
		return nil, &Error{Code: EConflict, Field: "email", Message: "a user with this email already exists"}
	}
	in := InRealm{r.ID}
	evs := []Event{IdentityCreated{InRealm: in, ID: inv.UserID, Kind: KindUser, EmailIndex: inv.EmailIndex, Sealed: c.Sealed, PasswordHash: c.PasswordHash}}
	for _, role := range inv.Roles {
		evs = append(evs, RoleGranted{in, inv.UserID, role})
	}
	groups := 0
	for _, g := range inv.Groups {
		if grp := r.Groups[g]; grp != nil && grp.Members.Len() < s.Limits.MembersPerGroup && groups < s.Limits.GroupsPerIdentity {
			evs = append(evs, MemberAdded{in, g, inv.UserID})
			groups++
		}
	}
	return append(evs, InvitationAccepted{in, invID, inv.UserID}), nil
}

// --- events --------------------------------------------------------------------

// InvitationCreated creates an invitation.
type InvitationCreated struct {
	InRealm
	ID         string     `json:"id"`
	Invitation Invitation `json:"invitation"`
}

// InvitationRenewed is "request again": a new token and expiry.
type InvitationRenewed struct {
	InRealm
	ID        string    `json:"id"`
	TokenHash string    `json:"tokenHash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// InvitationAccepted marks an invitation used; its user is created by the
// events before it.
type InvitationAccepted struct {
	InRealm
	ID   string `json:"id"`
	User string `json:"user"`
}

// EventType implements Event.
func (InvitationCreated) EventType() string { return "InvitationCreated" }

// EventType implements Event.
func (InvitationRenewed) EventType() string { return "InvitationRenewed" }

// EventType implements Event.
func (InvitationAccepted) EventType() string { return "InvitationAccepted" }

// --- apply ---------------------------------------------------------------------

func (e InvitationCreated) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	inv := e.Invitation
	inv.ID, inv.gen = e.ID, r.gen
	r.Invitations[e.ID] = &inv
	r.invitationTokens[inv.TokenHash] = e.ID
	touch(Change{Kind: ChangeInvitation, Realm: e.Realm, From: e.ID})
}

func (e InvitationRenewed) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	inv := r.ownInvitation(e.ID)
	delete(r.invitationTokens, inv.TokenHash)
	inv.TokenHash, inv.ExpiresAt = e.TokenHash, e.ExpiresAt
	r.invitationTokens[inv.TokenHash] = e.ID
	touch(Change{Kind: ChangeInvitation, Realm: e.Realm, From: e.ID})
}

func (e InvitationAccepted) apply(s *State, touch Touch) {
	r := s.realms[e.Realm]
	inv := r.ownInvitation(e.ID)
	inv.Accepted = true
	delete(r.invitationTokens, inv.TokenHash)
	touch(Change{Kind: ChangeInvitation, Realm: e.Realm, From: e.ID})
}
