package iam

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Request is a command with its context: the realm it acts on, the identity
// asking (Actor; "" is the system itself, e.g. bootstrap) and the client's
// idempotency key with a hash of its request.
type Request struct {
	Realm          string
	Actor          string
	IdempotencyKey string
	RequestHash    string
	At             time.Time
	Command        Command
}

// Command is a request to change the state. Ids of created entities are
// chosen by the caller, so that re-deciding a command after a conflict
// creates the same entity.
type Command interface {
	// permission names the action and the HRN the actor must be allowed.
	permission(r *Realm) (action, hrn string)
	// validate judges the input alone.
	validate() error
	// decide judges the command against the realm and returns its events.
	decide(s *State, r *Realm) ([]Event, error)
}

// Decide validates req against s and returns the events that carry it out:
// none when the change is already in place. Errors: not_found (realm or an
// entity), permission_denied (actor lacks the command's permission, judged
// before its input), invalid_argument, conflict, limit_exceeded.
func Decide(s *State, req Request) ([]Event, error) {
	if c, ok := req.Command.(CreateRealm); ok {
		if req.Actor != "" {
			return nil, Errorf(EPermissionDenied, "realms are created by the system only")
		}
		if err := c.validate(); err != nil {
			return nil, err
		}
		if req.Realm != "" && c.ID != req.Realm {
			return nil, FieldErrorf("realm", "a realm is created by a request for that realm")
		}
		if s.realms[c.ID] != nil {
			return nil, Errorf(EConflict, "realm %s already exists", c.ID)
		}
		system := len(s.realms) == 0 // the first realm is the system realm
		return []Event{RealmCreated{InRealm{c.ID}, c.Name, &system}}, nil
	}
	r := s.realms[req.Realm]
	if r == nil {
		return nil, Errorf(ENotFound, "realm %s not found", req.Realm)
	}
	if c, ok := req.Command.(creation); ok && req.Actor != "" {
		req.Command = c.createdBy(req.Actor)
	}
	if c, ok := req.Command.(byActor); ok {
		req.Command = c.by(req.Actor)
	}
	switch c := req.Command.(type) {
	case SetIdentityStatus:
		c.bySelf = req.Actor != "" && req.Actor == c.ID
		req.Command = c
	case CreateInvitation:
		// The inviter is who asks, whatever the command says: what the
		// invitation may carry is judged against it.
		c.Invitation.InvitedBy = req.Actor
		req.Command = c
	}
	if req.Actor != "" && !selfService(r, req.Actor, req.Command) {
		if err := Authorize(s, req.Realm, req.Actor, req.Command); err != nil {
			return nil, err
		}
	}
	if err := req.Command.validate(); err != nil {
		return nil, err
	}
	return req.Command.decide(s, r)
}

// Authorize returns nil when actor may perform cmd in realm, judged by the
// same evaluation as a check, and a permission_denied error naming the
// missing permission otherwise.
func Authorize(s *State, realm, actor string, cmd Command) error {
	r := s.realms[realm]
	if r == nil {
		return Errorf(ENotFound, "realm %s not found", realm)
	}
	action, hrn := cmd.permission(r)
	return AuthorizeAction(s, realm, actor, action, hrn)
}

// byActor is a command whose decision depends on who asks beyond its one
// permission (linking needs share on the resource too, judged where the
// resource lives, which only the state knows). Decide sets the actor, so
// that an API caller never names another.
type byActor interface {
	Command
	by(actor string) Command
}

// selfService reports whether cmd is one an identity may do to itself: a
// deactivation, and, for a user, editing its own name and email and
// deleting its own account for good (the person owns its personal data).
func selfService(r *Realm, actor string, cmd Command) bool {
	if actor == "" {
		return false
	}
	switch c := cmd.(type) {
	case SetIdentityStatus:
		return c.ID == actor && c.Status == StatusDeactivated
	case ChangePersonalData:
		return c.User == actor
	case DeleteIdentity:
		u := r.Identities.Get(c.ID)
		return c.ID == actor && u != nil && u.Kind == KindUser
	}
	return false
}

// AuthorizeAction is Authorize for an action named directly (reads, checks
// of other subjects).
func AuthorizeAction(s *State, realm, actor, action, hrn string) error {
	d := s.Check(CheckRequest{Realm: realm, Subject: actor, Action: action, Resource: hrn})
	if !d.Allowed {
		return Errorf(EPermissionDenied, "permission %s on %s is missing: %s", action, hrn, d.Reason())
	}
	return nil
}

// systemOnly is embedded by commands that the API executes as the system
// (Actor ""), after authenticating the person itself: sign-in, redemption,
// self-service password changes, invitation acceptance.
type systemOnly struct{}

func (systemOnly) permission(*Realm) (string, string) { return "system", "" }

// --- validation helpers -------------------------------------------------

// MaxNameLength bounds display names.
const MaxNameLength = 256

func validName(field, s string) error {
	if s == "" || strings.TrimSpace(s) == "" {
		return FieldErrorf(field, "must not be empty")
	}
	if utf8.RuneCountInString(s) > MaxNameLength || !utf8.ValidString(s) {
		return FieldErrorf(field, "must be valid UTF-8 of at most %d characters", MaxNameLength)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return FieldErrorf(field, "must not contain control characters")
		}
	}
	return nil
}

// ValidID checks an entity id as it may appear in a path or a key.
func ValidID(field, s string) error {
	if s == "" || len(s) > 64 {
		return FieldErrorf(field, "must be an id of 1 to 64 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return FieldErrorf(field, "%q is not a valid id", s)
		}
	}
	return nil
}

func limitErr(format string, args ...any) error {
	return Errorf(ELimitExceeded, "limit exceeded: "+format, args...)
}

func (r *Realm) identity(field, id string) (*Identity, error) {
	if i := r.Identities.Get(id); i != nil && i.Status != StatusDeleted {
		return i, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "identity " + id + " not found"}
}

func (r *Realm) app(field, id string) (*Identity, error) {
	i, err := r.identity(field, id)
	if err == nil && i.Kind != KindApp {
		return nil, &Error{Code: ENotFound, Field: field, Message: "app " + id + " not found"}
	}
	return i, err
}

func (r *Realm) user(field, id string) (*Identity, error) {
	i, err := r.identity(field, id)
	if err == nil && i.Kind != KindUser {
		return nil, &Error{Code: ENotFound, Field: field, Message: "user " + id + " not found"}
	}
	return i, err
}

func (r *Realm) group(field, id string) (*Group, error) {
	if g := r.Groups[id]; g != nil {
		return g, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "group " + id + " not found"}
}

func (r *Realm) policy(field, id string) (*Policy, error) {
	if p := r.Policies[id]; p != nil {
		return p, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "policy " + id + " not found"}
}

func (r *Realm) project(field, id string) (*Project, error) {
	if p := r.Projects[id]; p != nil {
		return p, nil
	}
	return nil, &Error{Code: ENotFound, Field: field, Message: "project " + id + " not found"}
}

// IdentityHRN is the HRN of identity id of realm: an app's or a user's.
func (s *State) IdentityHRN(realm, id string) string {
	if r := s.realms[realm]; r != nil {
		return r.identityHRN(id)
	}
	return UserHRN(realm, id)
}

func (r *Realm) identityHRN(id string) string {
	if i := r.Identities.Get(id); i != nil && i.Kind == KindApp {
		return AppHRN(r.ID, id)
	}
	return UserHRN(r.ID, id)
}
