package iam

// ChangeKind names what an applied event changed: an entity or an edge
// between two entities.
type ChangeKind uint8

// Kinds of change. For an entity, From is its id and To is empty; for an
// edge, From and To are its ends, as noted.
const (
	ChangeRealm               ChangeKind = iota + 1 // the realm itself (From empty)
	ChangeIdentity                                  // a user or an app
	ChangeGroup                                     // a group
	ChangePolicy                                    // a policy
	ChangeProject                                   // a project
	ChangeInvitation                                // an invitation
	ChangeMember                                    // group From has identity To as member
	ChangeRole                                      // identity From holds role To
	ChangeAttachment                                // policy To is attached to identity or group From
	ChangeProjectMember                             // project From has member To, with policies
	ChangeProjectResource                           // project From holds resource HRN To
	ChangeCredential                                // app From has client credential To
	ChangeAPIKey                                    // app From has API key To
	ChangeAPIKeyStatus                              // API key To of app From is disabled
	ChangeAuthCode                                  // user From holds the code with hash To
	ChangeDefaultProject                            // app From has project To as its default
	ChangeAppManager                                // app From has manager To (identity or group)
	ChangeGroupManager                              // group From has manager To
	ChangeProjectManager                            // project From has manager To
	ChangeRevokedKey                                // signing key From is revoked (To empty)
	ChangeRefreshFamily                             // user From holds the refresh-token family To
	ChangeAppShare                                  // app From is shared with To (identity or group)
	ChangeResourceNotLinkable                       // resource HRN To, at home in project From, may not be linked
	ChangeProjectPolicy                             // project From has its own policy To
	ChangeProjectDefaults                           // project From's default member policies (To empty)
	ChangePlan                                      // plan From (To empty; an edge row, see replica/rows.go)
	ChangePlanAttachment                            // plan To is attached to identity or group From
)

// Change names one entity or edge of a realm whose value may have changed
// (been created, updated or removed). Its current value is read from the
// State, unless Edge says it; the replica maps each change to the row that
// stores it.
type Change struct {
	Kind     ChangeKind
	Realm    string
	From, To string
	Edge     EdgeChange
}

// EdgeChange says what an event that adds or removes one edge did to it, so
// that the replica writes the edge's row without looking it up again in the
// State: a replay's million edges each cost two lookups (a map's and a
// set's) there. Only the last change to a row within a batch counts, and
// only the six events that say EdgeAdded or EdgeRemoved change these edges
// (a deletion's Decide removes an identity's edges with them before its
// IdentityDeleted), so the last one is the edge's value at the batch's end.
type EdgeChange uint8

// Edge changes. EdgeUnsaid (the zero value) is read from the State.
const (
	EdgeUnsaid EdgeChange = iota
	EdgeAdded
	EdgeRemoved
)

// Touch receives the changes an applied event made.
type Touch func(Change)

// ApplyEntry applies one log entry. Entries must come in sequence order;
// touch (may be nil) is told every entity and edge that may have changed.
// An event of a type the domain does not know is an error, and then nothing
// of the entry is applied: a state must never skip a fact.
func (s *State) ApplyEntry(e LogEntry, touch Touch) error {
	// Check the whole entry first so that a refusal leaves the state as it was.
	for _, c := range e.Commits {
		for _, ev := range c.Events {
			if err := checkKnown(ev); err != nil {
				return err
			}
		}
	}
	if touch == nil {
		touch = func(Change) {}
	}
	for _, c := range e.Commits {
		for _, ev := range c.Events {
			ev.apply(s, touch)
		}
	}
	s.Settle(e)
	return nil
}

// ApplyEvents applies events without moving the position: the writer uses
// it to decide a group of commands before their entry has a sequence, and
// then calls Settle. Like ApplyEntry it refuses, applying none of them,
// events of which one is of a type the domain does not know.
func (s *State) ApplyEvents(evs []Event, touch Touch) error {
	for _, ev := range evs {
		if err := checkKnown(ev); err != nil {
			return err
		}
	}
	if touch == nil {
		touch = func(Change) {}
	}
	for _, ev := range evs {
		ev.apply(s, touch)
	}
	return nil
}

// Settle records that entry e (whose events are applied) is at e.Seq: the
// realm's last sequence, the idempotency keys of its commits, the position.
func (s *State) Settle(e LogEntry) {
	for _, c := range e.Commits {
		if len(c.Events) == 0 {
			continue
		}
		realm := s.realms[eventRealm(c.Events[0])]
		if realm == nil {
			continue
		}
		realm.LastSeq = e.Seq
		if s.TrackIdempotency && c.IdempotencyKey != "" {
			realm.rememberIdempotency(c, e.Seq, s.Limits)
		}
	}
	s.seq = e.Seq
}

func (r *Realm) rememberIdempotency(c Commit, seq uint64, l Limits) {
	if r.idem == nil {
		r.idem = map[string]IdempotencyRecord{}
	}
	if _, dup := r.idem[c.IdempotencyKey]; dup {
		return
	}
	r.idem[c.IdempotencyKey] = IdempotencyRecord{RequestHash: c.RequestHash, Seq: seq, At: c.At}
	r.idemOrder = append(r.idemOrder, c.IdempotencyKey)
	// Forget keys past their retention, oldest first, using log time so every
	// copy of the state forgets the same keys.
	for len(r.idemOrder) > 0 {
		old := r.idem[r.idemOrder[0]]
		if len(r.idemOrder) <= l.MaxIdempotencyKeysPerRealm && c.At.Sub(old.At) < l.IdempotencyRetention {
			break
		}
		delete(r.idem, r.idemOrder[0])
		r.idemOrder = r.idemOrder[1:]
	}
}

// SetSeq records the sequence a state loaded from elsewhere (a read model, a
// snapshot) corresponds to.
func (s *State) SetSeq(seq uint64) { s.seq = seq }
