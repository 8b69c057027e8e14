package api

import (
	"net/http"

	iam "github.com/iam-project/iam"
)

// maxAccessChangeEntries bounds the log one accessChanges request replays
// (from the replica's nearest checkpoint before from to to): a longer
// range answers 503 rather than tie up a process.
const maxAccessChangeEntries = 1_000_000

// accessChanges serves GET /v1/identities/{identityId}/accessChanges
// ?from=TOKEN&to=TOKEN: each change of the identity's effective permissions
// made by an entry after from and up to to (default: the log's head), with
// what it gained and lost and the entry's events that caused it. Readable
// by whoever may read the identity (itself included).
func (s *Server) accessChanges(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("identityId")
	if err := iam.ValidID("identityId", id); err != nil {
		return err
	}
	var hrn string
	_ = s.latest(r.Context(), func(st *iam.State) error { hrn = st.IdentityHRN(p.Realm, id); return nil })
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, hrn, id); err != nil {
		return err
	}
	q := r.URL.Query()
	var from, to uint64
	var err error
	if v := q.Get("from"); v != "" {
		if from, err = ParseToken("from", v); err != nil {
			return err
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = ParseToken("to", v); err != nil {
			return err
		}
	}
	if s.evlog == nil {
		return iam.Errorf(iam.EUnavailable, "no log to read the history from")
	}
	head, err := s.evlog.Head(r.Context())
	if err != nil {
		return iam.Errorf(iam.EUnavailable, "the log's head cannot be read: %v", err)
	}
	switch {
	case to == 0:
		to = head
	case to > head:
		return iam.FieldErrorf("to", "%s is beyond the log's head %s", FormatToken(to), FormatToken(head))
	}
	if from > to {
		return iam.FieldErrorf("from", "%s is after to %s", FormatToken(from), FormatToken(to))
	}
	// The replay starts at the nearest checkpoint at or before from: the
	// changes before from are not asked for, only the state they left.
	st, err := s.replicas[s.cfg.DefaultRegion].CheckpointState(r.Context(), from)
	if err != nil {
		return err
	}
	if to-st.Seq() > maxAccessChangeEntries {
		return iam.Errorf(iam.EUnavailable, "the range is longer than this server replays for one request (%d entries)", maxAccessChangeEntries)
	}
	tr := iam.NewAccessTrackerAt(st, p.Realm, id, from)
	if to > st.Seq() {
		f, err := s.evlog.Follow(r.Context(), st.Seq()+1)
		if err != nil {
			return iam.Errorf(iam.EUnavailable, "the log cannot be read: %v", err)
		}
		defer f.Stop()
	replay:
		for {
			batch, err := f.Next(r.Context(), 0)
			if err != nil {
				return iam.Errorf(iam.EUnavailable, "the log cannot be read: %v", err)
			}
			for _, e := range batch {
				if e.Seq > to {
					break replay
				}
				if err := tr.Apply(e); err != nil {
					return iam.Errorf(iam.EInternal, "entry %d: %v", e.Seq, err)
				}
				if e.Seq == to {
					break replay
				}
			}
		}
	}
	type change struct {
		Token string `json:"token"`
		iam.AccessChange
	}
	changes := []change{}
	for _, c := range tr.Changes {
		changes = append(changes, change{FormatToken(c.Seq), c})
	}
	writeJSON(w, http.StatusOK, map[string]any{"identityId": id, "from": FormatToken(from), "to": FormatToken(to), "changes": changes})
	return nil
}
