package sim

import (
	"encoding/json"
	"slices"
	"sort"
	"time"
)

// logEntry is one entry of the log as the change feed (GET /v1/changes)
// shows it: its sequence (the consistency token), its append time and the
// events of the realm's commits in it.
type logEntry struct {
	Seq    uint64
	Time   time.Time
	Events []logEvent
}

// logEvent is one event, with the fields the model reads.
type logEvent struct {
	Type string
	eventData
}

type eventData struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Status     string `json:"status"`
	Group      string `json:"group"`
	Identity   string `json:"identity"`
	Policy     string `json:"policy"`
	Target     string `json:"target"`
	Statements []struct {
		Effect    string   `json:"effect"`
		Actions   []string `json:"actions"`
		Resources []string `json:"resources"`
	} `json:"statements"`
}

func (e *logEvent) UnmarshalJSON(b []byte) error {
	var w struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.Type = w.Type
	return json.Unmarshal(w.Data, &e.eventData)
}

// model is the access that the workload's checks ask about, as a function
// of the log position: for every (user, resource) pair, the positions at
// which "may read" changes. It is built from the log itself (the change
// feed), after the run, and knows just enough of iam's evaluation for the
// workload's universe: allow statements on exact resources, attached to a
// user directly or to a group the user is a member of, and deactivation,
// which denies everything.
type model struct {
	resources []string // HRNs, index = resource number
	// points[pair] are the positions where the pair's answer changes, in
	// order, starting from false at 0.
	points map[pairKey][]point
	// activity[user] are the positions where the user's being active
	// changes, starting from inactive (not yet created) at 0.
	activity map[string][]point
	seqs     []uint64    // every entry's sequence, in order
	times    []time.Time // and its append time (kept non-decreasing)
}

type pairKey struct {
	user     string
	resource int
}

type point struct {
	seq     uint64
	allowed bool
}

// buildModel replays entries (in any order) for the given users and
// resources.
func buildModel(entries []logEntry, users []string, resources []string) *model {
	entries = slices.Clone(entries)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Seq < entries[j].Seq })
	m := &model{resources: resources, points: map[pairKey][]point{}, activity: map[string][]point{}}
	resIndex := map[string]int{}
	for i, r := range resources {
		resIndex[r] = i
	}
	wanted := map[string]bool{}
	for _, u := range users {
		wanted[u] = true
	}
	var (
		policyRes  = map[string][]int{}           // policy → resources it allows reading
		active     = map[string]bool{}            // identity → exists and active
		attached   = map[string]map[string]bool{} // identity or group → policies
		memberOf   = map[string]map[string]bool{} // identity → groups
		membersOf  = map[string]map[string]bool{} // group → identities
		current    = map[pairKey]bool{}
		addTo      = func(m map[string]map[string]bool, k, v string) { setOf(m, k)[v] = true }
		removeFrom = func(m map[string]map[string]bool, k, v string) { delete(m[k], v) }
	)
	eval := func(u string, r int) bool {
		if !active[u] {
			return false
		}
		holds := func(target string) bool {
			for p := range attached[target] {
				if slices.Contains(policyRes[p], r) {
					return true
				}
			}
			return false
		}
		if holds(u) {
			return true
		}
		for g := range memberOf[u] {
			if holds(g) {
				return true
			}
		}
		return false
	}
	for _, e := range entries {
		m.seqs = append(m.seqs, e.Seq)
		t := e.Time
		if n := len(m.times); n > 0 && m.times[n-1].After(t) {
			t = m.times[n-1] // keep times ordered for headAt
		}
		m.times = append(m.times, t)
		touched := map[string]bool{}
		for _, ev := range e.Events {
			switch ev.Type {
			case "IdentityCreated":
				active[ev.ID] = true
				touched[ev.ID] = true
			case "IdentityStatusChanged":
				active[ev.ID] = ev.Status == "active"
				touched[ev.ID] = true
			case "IdentityDeleted":
				delete(active, ev.ID)
				touched[ev.ID] = true
			case "PolicyCreated":
				for _, st := range ev.Statements {
					if st.Effect != "allow" || !(slices.Contains(st.Actions, "read") || slices.Contains(st.Actions, "*")) {
						continue
					}
					for _, r := range st.Resources {
						if i, ok := resIndex[r]; ok {
							policyRes[ev.ID] = append(policyRes[ev.ID], i)
						}
					}
				}
			case "PolicyAttached", "PolicyDetached":
				if ev.Type == "PolicyAttached" {
					addTo(attached, ev.Target, ev.Policy)
				} else {
					removeFrom(attached, ev.Target, ev.Policy)
				}
				touched[ev.Target] = true
				for u := range membersOf[ev.Target] {
					touched[u] = true
				}
			case "MemberAdded":
				addTo(memberOf, ev.Identity, ev.Group)
				addTo(membersOf, ev.Group, ev.Identity)
				touched[ev.Identity] = true
			case "MemberRemoved":
				removeFrom(memberOf, ev.Identity, ev.Group)
				removeFrom(membersOf, ev.Group, ev.Identity)
				touched[ev.Identity] = true
			}
		}
		for u := range touched {
			if !wanted[u] {
				continue
			}
			if pts := m.activity[u]; (len(pts) > 0 && pts[len(pts)-1].allowed) != active[u] {
				m.activity[u] = append(pts, point{e.Seq, active[u]})
			}
			for r := range resources {
				k := pairKey{u, r}
				if v := eval(u, r); v != current[k] {
					current[k] = v
					m.points[k] = append(m.points[k], point{e.Seq, v})
				}
			}
		}
	}
	return m
}

func setOf(m map[string]map[string]bool, k string) map[string]bool {
	s := m[k]
	if s == nil {
		s = map[string]bool{}
		m[k] = s
	}
	return s
}

// at is the pair's answer at position seq.
func (m *model) at(user string, resource int, seq uint64) bool {
	pts := m.points[pairKey{user, resource}]
	i := sort.Search(len(pts), func(i int) bool { return pts[i].seq > seq })
	if i == 0 {
		return false
	}
	return pts[i-1].allowed
}

// within reports whether answer is the pair's answer at some position in
// [lo, hi].
func (m *model) within(user string, resource int, lo, hi uint64, answer bool) bool {
	if m.at(user, resource, lo) == answer {
		return true
	}
	for _, p := range m.points[pairKey{user, resource}] {
		if p.seq > lo && p.seq <= hi && p.allowed == answer {
			return true
		}
	}
	return false
}

// headAt is the last position the log had reached by t (0 before the
// first entry).
func (m *model) headAt(t time.Time) uint64 {
	i := sort.Search(len(m.times), func(i int) bool { return m.times[i].After(t) })
	if i == 0 {
		return 0
	}
	return m.seqs[i-1]
}

// deactivatedBy reports whether user was deactivated at some position up
// to hi. A deactivation revokes the tokens issued before it, so the token
// an app took at setup is refused from then on, reactivated or not.
func (m *model) deactivatedBy(user string, hi uint64) bool {
	for _, p := range m.activity[user] {
		if p.seq <= hi && !p.allowed {
			return true
		}
	}
	return false
}

// inactiveWithin reports whether user is not active at some position in
// [lo, hi].
func (m *model) inactiveWithin(user string, lo, hi uint64) bool {
	pts := m.activity[user]
	i := sort.Search(len(pts), func(i int) bool { return pts[i].seq > lo })
	if i == 0 || !pts[i-1].allowed {
		return true
	}
	for _, p := range pts[i:] {
		if p.seq <= hi && !p.allowed {
			return true
		}
	}
	return false
}
