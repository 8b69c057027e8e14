package iam

import (
	"cmp"
	"slices"
	"time"
)

// AccessChange is one change of an identity's effective permissions, made
// by one log entry: what it gained and lost, and the entry's events in the
// identity's realm (redacted) — the membership, attachment or deny that
// caused it, even when it reached the identity through a group.
type AccessChange struct {
	Seq    uint64        `json:"-"`
	Time   time.Time     `json:"time"`
	Actor  string        `json:"actor"`
	Gained []Permission  `json:"gained"`
	Lost   []Permission  `json:"lost"`
	Events []AccessEvent `json:"events"`
}

// AccessEvent is one event of an AccessChange: its type and its redacted data.
type AccessEvent struct {
	Type string `json:"type"`
	Data Event  `json:"data"`
}

// AccessTracker replays the log entry by entry from the first and records
// every change of one identity's effective permissions after position
// From. Effective permissions are compared as /permissions lists them, by
// (effect, action, resource, project): a permission that moves from one
// source to another (a direct attachment replacing a group's) is no change.
type AccessTracker struct {
	Realm, Identity string
	// From: changes made by entries at or before it are not recorded.
	From uint64

	s       *State
	before  map[permissionKey]Permission
	Changes []AccessChange
}

// permissionKey is a permission as a check sees it: a project's member
// permission is not the same grant as a realm-wide one on the same HRN.
type permissionKey struct {
	effect                    Effect
	action, resource, project string
}

// NewAccessTracker returns a tracker over an empty state.
func NewAccessTracker(realm, identity string, from uint64) *AccessTracker {
	return NewAccessTrackerAt(NewState(), realm, identity, from)
}

// NewAccessTrackerAt returns a tracker that goes on from st, a state at a
// position at or before from (a replica's checkpoint), which it takes
// over: the replay then starts after st.Seq() instead of at the first
// entry.
func NewAccessTrackerAt(st *State, realm, identity string, from uint64) *AccessTracker {
	t := &AccessTracker{Realm: realm, Identity: identity, From: from, s: st}
	t.before = t.effective()
	return t
}

// effective is what the identity may do now: nothing unless it is active
// (a deactivation loses everything, a reactivation gains it back).
func (t *AccessTracker) effective() map[permissionKey]Permission {
	if id := t.s.Identity(t.Realm, t.Identity); id == nil || id.Status != StatusActive {
		return map[permissionKey]Permission{}
	}
	perms, _ := t.s.Permissions(t.Realm, t.Identity)
	out := make(map[permissionKey]Permission, len(perms))
	for _, p := range perms {
		k := permissionKey{p.Effect, p.Action, p.Resource, p.Source.Project}
		if _, ok := out[k]; !ok {
			out[k] = p
		}
	}
	return out
}

// Apply applies the next entry of the log and records the change it made,
// if any and if it comes after From. Errors: those of State.ApplyEntry.
func (t *AccessTracker) Apply(e LogEntry) error {
	touched := false
	for _, c := range e.Commits {
		for _, ev := range c.Events {
			if RealmOf(ev) == t.Realm {
				touched = true
			}
		}
	}
	if err := t.s.ApplyEntry(e, nil); err != nil {
		return err
	}
	if !touched {
		return nil // another realm's entry changes nothing here
	}
	after := t.effective()
	defer func() { t.before = after }()
	if e.Seq <= t.From {
		return nil
	}
	ch := AccessChange{Seq: e.Seq, Time: e.Time, Gained: []Permission{}, Lost: []Permission{}}
	for k, p := range after {
		if _, ok := t.before[k]; !ok {
			ch.Gained = append(ch.Gained, p)
		}
	}
	for k, p := range t.before {
		if _, ok := after[k]; !ok {
			ch.Lost = append(ch.Lost, p)
		}
	}
	if len(ch.Gained) == 0 && len(ch.Lost) == 0 {
		return nil
	}
	sortPermissions(ch.Gained)
	sortPermissions(ch.Lost)
	for _, c := range e.Commits {
		for _, ev := range c.Events {
			if RealmOf(ev) != t.Realm {
				continue
			}
			if ch.Actor == "" {
				ch.Actor = c.Actor
			}
			ch.Events = append(ch.Events, AccessEvent{Type: ev.EventType(), Data: Redact(ev)})
		}
	}
	t.Changes = append(t.Changes, ch)
	return nil
}

func sortPermissions(ps []Permission) {
	slices.SortFunc(ps, func(a, b Permission) int {
		return cmp.Or(cmp.Compare(a.Effect, b.Effect), cmp.Compare(a.Action, b.Action), cmp.Compare(a.Resource, b.Resource))
	})
}
