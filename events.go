package iam

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Event is one fact in the log. Events are versioned by their type name and
// EventVersion; a decoder that meets an unknown type or a newer version
// refuses it rather than guess.
type Event interface {
	EventType() string
}

// EventVersion is the schema version written for every event type today.
const EventVersion = 1

// Commit is the effect of one command: the events it produced, who asked for
// it, and the client's idempotency key with a hash of its request, so that a
// repeat of the same key is answered as the first time was, whichever writer
// process sees it and however long after.
type Commit struct {
	Actor          string    `json:"actor,omitempty"`
	IdempotencyKey string    `json:"idem,omitempty"`
	RequestHash    string    `json:"reqHash,omitempty"`
	At             time.Time `json:"at"`
	Events         []Event   `json:"-"`
}

// LogEntry is one message of the event log: one or more commits appended
// together (group commit). Seq is its stream sequence, the consistency token.
type LogEntry struct {
	Seq     uint64
	Subject string
	MsgID   string
	Time    time.Time // append time as the log recorded it
	Commits []Commit
}

// InRealm is embedded by every event that changes a realm.
type InRealm struct {
	Realm string `json:"realm"`
}

// RealmID returns the realm the event changes.
func (r InRealm) RealmID() string { return r.Realm }

// Heartbeat events carry no state change; the hub appends them so that every
// region can measure lag in seconds even when the log is idle.
type Heartbeat struct {
	At time.Time `json:"at"`
}

type RealmCreated struct {
	InRealm
	Name string `json:"name"`
}

// IdentityCreated creates a user or an app. PasswordHash is an argon2id PHC
// string, never a password.
type IdentityCreated struct {
	InRealm
	ID           string       `json:"id"`
	Kind         IdentityKind `json:"kind"`
	Email        string       `json:"email,omitempty"`
	Name         string       `json:"name,omitempty"`
	PasswordHash string       `json:"passwordHash,omitempty"`
	RedirectURIs []string     `json:"redirectUris,omitempty"`
	Owner        string       `json:"owner,omitempty"`
	// EmailIndex and Sealed replace Email and Name for users whose personal
	// data is encrypted under a per-user key kept outside the log
	// (crypto-shredding; see auth_events.go and docs/authentication.md).
	EmailIndex string `json:"emailIndex,omitempty"`
	Sealed     []byte `json:"sealed,omitempty"`
}

type IdentityStatusChanged struct {
	InRealm
	ID     string         `json:"id"`
	Status IdentityStatus `json:"status"`
	// BySelf: the identity deactivated itself, and may reactivate by
	// signing in again; an administrator's deactivation stands until an
	// administrator lifts it.
	BySelf bool `json:"bySelf,omitempty"`
}

// IdentityDeleted is permanent. Decide emits the removal of every edge of the
// identity before it, so the event needs no state to be applied.
type IdentityDeleted struct {
	InRealm
	ID string `json:"id"`
}

// CredentialAdded adds OAuth 2.0 client credentials to an app. SecretHash is
// argon2id; the secret itself is shown to the caller once and never stored.
type CredentialAdded struct {
	InRealm
	App          string `json:"app"`
	CredentialID string `json:"credentialId"`
	ClientID     string `json:"clientId"`
	SecretHash   string `json:"secretHash"`
}

type CredentialRemoved struct {
	InRealm
	App          string `json:"app"`
	CredentialID string `json:"credentialId"`
}

// APIKeyAdded adds an API key to an app; KeyHash is argon2id of the key.
type APIKeyAdded struct {
	InRealm
	App     string `json:"app"`
	KeyID   string `json:"keyId"`
	KeyHash string `json:"keyHash"`
}

type APIKeyRemoved struct {
	InRealm
	App   string `json:"app"`
	KeyID string `json:"keyId"`
}

type GroupCreated struct {
	InRealm
	ID   string `json:"id"`
	Name string `json:"name"`
}

type MemberAdded struct {
	InRealm
	Group    string `json:"group"`
	Identity string `json:"identity"`
}

type MemberRemoved struct {
	InRealm
	Group    string `json:"group"`
	Identity string `json:"identity"`
}

type RoleGranted struct {
	InRealm
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

type RoleRevoked struct {
	InRealm
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

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

type PolicyDetached struct {
	InRealm
	Policy string `json:"policy"`
	Target string `json:"target"`
}

type ProjectCreated struct {
	InRealm
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ProjectMemberSet makes an identity or a group a member of a project with
// exactly the given policies (replacing any it had).
type ProjectMemberSet struct {
	InRealm
	Project  string   `json:"project"`
	Member   string   `json:"member"`
	Policies []string `json:"policies"`
}

type ProjectMemberRemoved struct {
	InRealm
	Project string `json:"project"`
	Member  string `json:"member"`
}

type ProjectResourceAdded struct {
	InRealm
	Project  string   `json:"project"`
	HRN      string   `json:"hrn"`
	Relation Relation `json:"relation"`
}

type ProjectResourceRemoved struct {
	InRealm
	Project string `json:"project"`
	HRN     string `json:"hrn"`
}

func (Heartbeat) EventType() string              { return "Heartbeat" }
func (RealmCreated) EventType() string           { return "RealmCreated" }
func (IdentityCreated) EventType() string        { return "IdentityCreated" }
func (IdentityStatusChanged) EventType() string  { return "IdentityStatusChanged" }
func (IdentityDeleted) EventType() string        { return "IdentityDeleted" }
func (CredentialAdded) EventType() string        { return "CredentialAdded" }
func (CredentialRemoved) EventType() string      { return "CredentialRemoved" }
func (APIKeyAdded) EventType() string            { return "APIKeyAdded" }
func (APIKeyRemoved) EventType() string          { return "APIKeyRemoved" }
func (GroupCreated) EventType() string           { return "GroupCreated" }
func (MemberAdded) EventType() string            { return "MemberAdded" }
func (MemberRemoved) EventType() string          { return "MemberRemoved" }
func (RoleGranted) EventType() string            { return "RoleGranted" }
func (RoleRevoked) EventType() string            { return "RoleRevoked" }
func (PolicyCreated) EventType() string          { return "PolicyCreated" }
func (PolicyAttached) EventType() string         { return "PolicyAttached" }
func (PolicyDetached) EventType() string         { return "PolicyDetached" }
func (ProjectCreated) EventType() string         { return "ProjectCreated" }
func (ProjectMemberSet) EventType() string       { return "ProjectMemberSet" }
func (ProjectMemberRemoved) EventType() string   { return "ProjectMemberRemoved" }
func (ProjectResourceAdded) EventType() string   { return "ProjectResourceAdded" }
func (ProjectResourceRemoved) EventType() string { return "ProjectResourceRemoved" }

var eventFactories = map[string]func() Event{}

func init() {
	for _, f := range []func() Event{
		func() Event { return &Heartbeat{} },
		func() Event { return &RealmCreated{} },
		func() Event { return &IdentityCreated{} },
		func() Event { return &IdentityStatusChanged{} },
		func() Event { return &IdentityDeleted{} },
		func() Event { return &CredentialAdded{} },
		func() Event { return &CredentialRemoved{} },
		func() Event { return &APIKeyAdded{} },
		func() Event { return &APIKeyRemoved{} },
		func() Event { return &GroupCreated{} },
		func() Event { return &MemberAdded{} },
		func() Event { return &MemberRemoved{} },
		func() Event { return &RoleGranted{} },
		func() Event { return &RoleRevoked{} },
		func() Event { return &PolicyCreated{} },
		func() Event { return &PolicyAttached{} },
		func() Event { return &PolicyDetached{} },
		func() Event { return &ProjectCreated{} },
		func() Event { return &ProjectMemberSet{} },
		func() Event { return &ProjectMemberRemoved{} },
		func() Event { return &ProjectResourceAdded{} },
		func() Event { return &ProjectResourceRemoved{} },
	} {
		eventFactories[f().EventType()] = f
	}
}

// wireEvent is an event's versioned envelope inside a commit.
type wireEvent struct {
	Type string          `json:"type"`
	V    int             `json:"v"`
	Data json.RawMessage `json:"data"`
}

type wireCommit struct {
	Commit
	Events []wireEvent `json:"events"`
}

// MarshalCommits encodes commits as the body of one log message.
func MarshalCommits(commits []Commit) ([]byte, error) {
	wire := make([]wireCommit, len(commits))
	for i, c := range commits {
		wire[i].Commit = c
		wire[i].Events = make([]wireEvent, len(c.Events))
		for j, e := range c.Events {
			data, err := json.Marshal(e)
			if err != nil {
				return nil, fmt.Errorf("marshal %s: %w", e.EventType(), err)
			}
			wire[i].Events[j] = wireEvent{Type: e.EventType(), V: EventVersion, Data: data}
		}
	}
	return json.Marshal(wire)
}

// UnmarshalCommits decodes the body of one log message. An unknown event type
// or a version newer than this code understands is an error: a replica must
// stop rather than silently skip a change it cannot apply.
func UnmarshalCommits(data []byte) ([]Commit, error) {
	var wire []wireCommit
	if err := json.Unmarshal(data, &wire); err != nil {
		return nil, fmt.Errorf("decode commits: %w", err)
	}
	commits := make([]Commit, len(wire))
	for i, w := range wire {
		commits[i] = w.Commit
		commits[i].Events = make([]Event, len(w.Events))
		for j, we := range w.Events {
			f, ok := eventFactories[we.Type]
			if !ok {
				return nil, fmt.Errorf("decode commits: unknown event type %q", we.Type)
			}
			if we.V < 1 || we.V > EventVersion {
				return nil, fmt.Errorf("decode commits: %s version %d not supported", we.Type, we.V)
			}
			e := f()
			if err := json.Unmarshal(we.Data, e); err != nil {
				return nil, fmt.Errorf("decode %s: %w", we.Type, err)
			}
			commits[i].Events[j] = derefEvent(e)
		}
	}
	return commits, nil
}

// derefEvent turns the *T the factories make into the T that Apply switches on.
func derefEvent(e Event) Event {
	return reflect.ValueOf(e).Elem().Interface().(Event)
}
