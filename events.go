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
//
// The interface is sealed: only the types of this package implement it, each
// next to the commands that emit it, and each applies itself to a State.
// Every type is listed once, in eventTypes.
type Event interface {
	EventType() string
	// apply changes the state by the event. Events are facts: apply never
	// judges, Decide has already checked everything.
	apply(s *State, touch Touch)
}

// eventTypes is the one registry of event types: what the codec decodes and
// what ApplyEvents accepts. A type missing here is refused by both.
var eventTypes = []Event{
	Heartbeat{},
	// realm.go
	RealmCreated{},
	// identity.go
	IdentityCreated{},
	IdentityStatusChanged{},
	IdentityDeleted{},
	TokensRevoked{},
	PersonalDataChanged{},
	// app.go
	CredentialAdded{},
	CredentialRemoved{},
	CredentialStatusChanged{},
	APIKeyAdded{},
	APIKeyRemoved{},
	APIKeyStatusChanged{},
	DefaultProjectSet{},
	// group.go
	GroupCreated{},
	MemberAdded{},
	MemberRemoved{},
	// role.go
	RoleGranted{},
	RoleRevoked{},
	// policy.go
	PolicyCreated{},
	PolicyAttached{},
	PolicyDetached{},
	// project.go
	ProjectCreated{},
	ProjectMemberSet{},
	ProjectMemberRemoved{},
	ProjectResourceAdded{},
	ProjectResourceRemoved{},
	// projectpolicy.go
	ProjectPolicyCreated{},
	ProjectPolicyDeleted{},
	ProjectDefaultsSet{},
	// plan.go
	PlanCreated{},
	PlanAttached{},
	PlanDetached{},
	// signin.go
	SignInFailed{},
	SignInSucceeded{},
	AuthCodeIssued{},
	AuthCodeRedeemed{},
	PasswordChanged{},
	PasswordResetRequested{},
	// refresh.go
	RefreshFamilyStarted{},
	RefreshTokenRotated{},
	RefreshFamilyRevoked{},
	// invitation.go
	InvitationCreated{},
	InvitationRenewed{},
	InvitationAccepted{},
	// manager.go
	ManagerAdded{},
	ManagerRemoved{},
	// signingkey.go
	SigningKeyRevoked{},
	// share.go
	AppShared{},
	AppUnshared{},
	ResourceLinkableSet{},
}

// Derived from eventTypes: the decoder's types by name, and the set of
// dynamic types ApplyEvents accepts (so that a struct embedding an event, a
// pointer to one or nil is refused rather than applied as something else).
var eventsByName, knownEvents = func() (map[string]reflect.Type, map[reflect.Type]struct{}) {
	byName := make(map[string]reflect.Type, len(eventTypes))
	known := make(map[reflect.Type]struct{}, len(eventTypes))
	for _, e := range eventTypes {
		t := reflect.TypeOf(e)
		if _, dup := byName[e.EventType()]; dup {
			panic("iam: event type " + e.EventType() + " registered twice")
		}
		byName[e.EventType()], known[t] = t, struct{}{}
	}
	return byName, known
}()

// checkKnown returns an error unless e is of a registered event type.
func checkKnown(e Event) error {
	if _, ok := knownEvents[reflect.TypeOf(e)]; !ok {
		return fmt.Errorf("apply: unknown event %T", e)
	}
	return nil
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
	// ExpectRealm and ExpectSeq are the append's expectation, signed with
	// the entry: it was appended when ExpectRealm's last sequence was
	// ExpectSeq. A reader that knows the realm's last sequence refuses an
	// entry whose expectation differs (a replayed or re-ordered copy).
	// Empty for entries appended without one (heartbeats).
	ExpectRealm string
	ExpectSeq   uint64
}

// InRealm is embedded by every event that changes a realm.
type InRealm struct {
	Realm string `json:"realm"`
}

// RealmID returns the realm the event changes.
func (r InRealm) RealmID() string { return r.Realm }

// RealmOf returns the realm an event changes ("" for heartbeats).
func RealmOf(e Event) string { return eventRealm(e) }

func eventRealm(e Event) string {
	if r, ok := e.(interface{ RealmID() string }); ok {
		return r.RealmID()
	}
	return ""
}

// Heartbeat events carry no state change; the hub appends them so that every
// region can measure lag in seconds even when the log is idle.
type Heartbeat struct {
	At time.Time `json:"at"`
}

// EventType implements Event.
func (Heartbeat) EventType() string { return "Heartbeat" }

func (Heartbeat) apply(*State, Touch) {}

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
			t, ok := eventsByName[we.Type]
			if !ok {
				return nil, fmt.Errorf("decode commits: unknown event type %q", we.Type)
			}
			if we.V < 1 || we.V > EventVersion {
				return nil, fmt.Errorf("decode commits: %s version %d not supported", we.Type, we.V)
			}
			p := reflect.New(t)
			if err := json.Unmarshal(we.Data, p.Interface()); err != nil {
				return nil, fmt.Errorf("decode %s: %w", we.Type, err)
			}
			// The value, not the pointer: events are applied and compared
			// as values.
			commits[i].Events[j] = p.Elem().Interface().(Event)
		}
	}
	return commits, nil
}
