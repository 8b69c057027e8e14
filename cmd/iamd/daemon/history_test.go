package daemon_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// pastCheck is a check's answer as given at the time: the request, and
// what it said at which token.
type pastCheck struct {
	req     map[string]any
	allowed bool
	reason  string
	token   string
}

// pastRead is a management read (/permissions, a group) as it answered
// at the time.
type pastRead struct {
	path, token, raw string
}

// historyCheckpointEvery spaces the checkpoints of the history tests
// closely, so that most answers are built from one plus a replay.
const historyCheckpointEvery = 16

// historyWrites is how many writes the history property tests make.
func historyWrites() int {
	if testing.Short() || raceOn {
		return 200
	}
	return 500
}

// pastAnswers is a random history of writes with what was answered at
// each write's token: checks, and /permissions and a group read.
type pastAnswers struct {
	checks []pastCheck
	perms  []pastRead
	users  []string
	hrn    func(int) string
	head   string
	rng    *rand.Rand
}

// recordHistory makes writes through admin (in realm), each changing
// something, and records the answers at each write's token.
func recordHistory(t *testing.T, admin *daemontest.Client, realm string, writes int) *pastAnswers {
	const (
		nUsers, nGroups, nResources = 4, 3, 3
		probes                      = 2 // extra random checks recorded per write
	)
	rng := rand.New(rand.NewPCG(20261203, 11))
	hrn := func(i int) string { return fmt.Sprintf("hrn:here:data::%s:hist-%d", realm, i) }
	var users, groups, policies []string
	for i := range nUsers {
		users = append(users, admin.Must(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": fmt.Sprintf("h%d@example.com", i), "name": "H"}).Str("id"))
	}
	for range nGroups {
		groups = append(groups, admin.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "G"}).Str("id"))
	}
	for _, p := range []struct {
		effect, pattern string
	}{
		{"allow", hrn(0)}, {"allow", hrn(1)}, {"allow", fmt.Sprintf("hrn:here:data::%s:hist-*", realm)},
		{"deny", hrn(0)}, {"deny", hrn(2)},
	} {
		body := map[string]any{"name": "P", "statements": []any{map[string]any{"effect": p.effect, "actions": []string{"read"}, "resources": []string{p.pattern}}}}
		policies = append(policies, admin.Must(http.StatusCreated, "POST", "/v1/policies", body).Str("id"))
	}

	on := map[string]bool{}
	var checks []pastCheck
	var perms []pastRead
	began := time.Now()
	for it := range writes {
		// Each write changes something (a repeat would append nothing and
		// answer an earlier token): attachments and memberships toggle.
		u, g, p := users[rng.IntN(nUsers)], groups[rng.IntN(nGroups)], policies[rng.IntN(len(policies))]
		var path string
		var body any
		switch op := rng.IntN(10); {
		case op < 3:
			path = "/v1/policies/" + p + "/attachments/" + u
		case op < 6:
			path = "/v1/policies/" + p + "/attachments/" + g
		case op < 9:
			path = "/v1/groups/" + g + "/members/" + u
		default:
			path = "/v1/users/" + u
		}
		on[path] = !on[path]
		method := http.MethodPut
		switch {
		case path == "/v1/users/"+u:
			// on: deactivated (users start active)
			status := "active"
			if on[path] {
				status = "deactivated"
			}
			method, body = http.MethodPatch, map[string]any{"status": status}
		case !on[path]:
			method = http.MethodDelete
		}
		wtok := admin.Must(http.StatusOK, method, path, body).Str("consistencyToken")
		for k := range 1 + probes {
			subject := u
			if k > 0 {
				subject = users[rng.IntN(nUsers)]
			}
			req := map[string]any{"subject": subject, "action": "read", "resource": hrn(rng.IntN(nResources)),
				"consistency": map[string]any{"mode": "at_least_as_fresh", "token": wtok}}
			r := admin.Must(http.StatusOK, "POST", "/v1/check", req)
			allowed, _ := r.Body["allowed"].(bool)
			checks = append(checks, pastCheck{req: req, allowed: allowed, reason: r.Str("reason"), token: r.Str("consistencyToken")})
		}
		for _, path := range []string{"/v1/identities/" + u + "/permissions", "/v1/groups/" + g} {
			r := admin.Must(http.StatusOK, "GET", path, nil, "Consistency-Token", wtok)
			perms = append(perms, pastRead{path: path, token: r.Header.Get("Consistency-Token"), raw: string(r.Raw)})
		}
		if it == 0 {
			t.Logf("first write at %s", wtok)
		}
	}
	head := checks[len(checks)-1].token
	t.Logf("%d writes, %d checks and %d reads (/permissions, groups) recorded in %v; head %s (%d)",
		writes, len(checks), len(perms), time.Since(began).Round(time.Millisecond), head, tokenSeq(t, head))

	return &pastAnswers{checks: checks, perms: perms, users: users, hrn: hrn, head: head, rng: rng}
}

// verify asks c, in each of regions, at_exact_snapshot and ?at= at every
// recorded token: each answer must be exactly the recorded one, reasons
// included; and the 400s of tokens past the head or malformed.
func (h *pastAnswers) verify(t *testing.T, c *daemontest.Client, regions []string) {
	t.Helper()
	began := time.Now()
	allowed := 0
	// Token by token, in random order, all of a token's answers
	// together, as an audit asks around one token.
	byToken := map[string][]int{}
	var tokens []string
	for i, pc := range h.checks {
		if byToken[pc.token] == nil {
			tokens = append(tokens, pc.token)
		}
		byToken[pc.token] = append(byToken[pc.token], i)
	}
	permsAt := map[string][]pastRead{}
	for _, pp := range h.perms {
		permsAt[pp.token] = append(permsAt[pp.token], pp)
	}
	for _, region := range regions {
		rc := *c
		rc.Region = region
		for _, ti := range h.rng.Perm(len(tokens)) {
			tok := tokens[ti]
			for _, i := range byToken[tok] {
				pc := h.checks[i]
				req := map[string]any{"subject": pc.req["subject"], "action": "read", "resource": pc.req["resource"],
					"consistency": map[string]any{"mode": "at_exact_snapshot", "token": tok}}
				r := rc.Must(http.StatusOK, "POST", "/v1/check", req)
				got, _ := r.Body["allowed"].(bool)
				if got != pc.allowed || r.Str("reason") != pc.reason || r.Str("consistencyToken") != tok {
					t.Fatalf("region %s: check %v at_exact_snapshot %s: got allowed=%t (%q) at %s, want allowed=%t (%q) at %s",
						region, pc.req, tok, got, r.Str("reason"), r.Str("consistencyToken"), pc.allowed, pc.reason, tok)
				}
				if got {
					allowed++
				}
			}
			for _, pp := range permsAt[tok] {
				r := rc.Must(http.StatusOK, "GET", pp.path+"?at="+tok, nil)
				if string(r.Raw) != pp.raw || r.Header.Get("Consistency-Token") != tok {
					t.Fatalf("region %s: %s at %s: got %s at %s, want %s", region, pp.path, tok, r.Raw, r.Header.Get("Consistency-Token"), pp.raw)
				}
			}
		}
	}
	if len(permsAt) != len(tokens) {
		t.Fatalf("permissions recorded at %d tokens, checks at %d: want the same", len(permsAt), len(tokens))
	}
	n := len(regions) * (len(h.checks) + len(h.perms))
	t.Logf("%d past answers (%d allowed) equal in %d regions, in %v (%v each)", n, allowed, len(regions),
		time.Since(began).Round(time.Millisecond), (time.Since(began) / time.Duration(n)).Round(time.Microsecond))

	// Past the log's head, malformed: 400 naming the field.
	past := api.FormatToken(tokenSeq(t, h.head) + 1000)
	for _, tc := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"check past head", "/v1/check", map[string]any{"subject": h.users[0], "action": "read", "resource": h.hrn(0),
			"consistency": map[string]any{"mode": "at_exact_snapshot", "token": past}}, "consistency.token"},
		{"check malformed", "/v1/check", map[string]any{"subject": h.users[0], "action": "read", "resource": h.hrn(0),
			"consistency": map[string]any{"mode": "at_exact_snapshot", "token": "ct1.!"}}, "consistency.token"},
		{"check without token", "/v1/check", map[string]any{"subject": h.users[0], "action": "read", "resource": h.hrn(0),
			"consistency": map[string]any{"mode": "at_exact_snapshot"}}, "consistency.token"},
		{"permissions past head", "/v1/identities/" + h.users[0] + "/permissions?at=" + past, nil, "consistency.token"},
		{"permissions malformed", "/v1/identities/" + h.users[0] + "/permissions?at=nope", nil, "at"},
	} {
		method := http.MethodPost
		if tc.body == nil {
			method = http.MethodGet
		}
		r := c.Do(method, tc.path, tc.body)
		if r.Status != http.StatusBadRequest || r.Str("field") != tc.field {
			t.Errorf("%s: got %d field %q (%s), want 400 naming %s", tc.name, r.Status, r.Str("field"), r.Raw, tc.field)
		}
	}
}

// TestHistory_AtExactSnapshot is issue 11's "time-travel reads": a random
// history of writes, with checks, /permissions and a group answered at
// each write's token; afterwards at_exact_snapshot and ?at= at every recorded token
// give exactly the recorded answers, reasons included, in every region,
// and again after a restart on the same data directory, asked by an
// auditor that did not exist at any of those tokens. Checkpoints are
// closely spaced so that most answers are built from one plus a replay;
// they are on disk, so the restarted process starts from the same ones.
func TestHistory_AtExactSnapshot(t *testing.T) {
	dir := t.TempDir()
	start := func(t *testing.T) *daemon.Main {
		return daemontest.StartWith(t, func(c *daemon.Config) { c.DataDir, c.CheckpointEvery = dir, historyCheckpointEvery })
	}
	m := start(t)
	admin := daemontest.AdminClient(t, m)
	regions := m.Config.Regions
	h := recordHistory(t, admin, m.Bootstrap.Realm, historyWrites())
	verify := func(t *testing.T, c *daemontest.Client) { h.verify(t, c, regions) }
	t.Run("live", func(t *testing.T) { verify(t, admin) })
	t.Run("access changes from checkpoints", func(t *testing.T) { h.verifyAccessChanges(t, admin) })
	// An auditor made after the whole history asks about it: its right to
	// check others and read is judged now, not at the token.
	auditor := admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "auditor"}).Str("id")
	cred := admin.Must(http.StatusCreated, "POST", "/v1/apps/"+auditor+"/credentials", nil)
	admin.Must(http.StatusOK, "PUT", "/v1/identities/"+auditor+"/roles/OrgAdmin", nil)
	stopIamd(t, m)
	t.Run("restarted, by a later auditor", func(t *testing.T) {
		m := start(t)
		c := &daemontest.Client{TB: t, Base: daemontest.URL(m), Token: daemontest.ClientToken(t, daemontest.URL(m), cred.Str("clientId"), cred.Str("clientSecret"), "")}
		verify(t, c)
		stopIamd(t, m)
	})
}

// TestHistory_AtExactSnapshotJoined: on a hub and a region, a region that
// joins from a snapshot taken after the whole history answers at every recorded token exactly
// as was answered at the time: at once (replaying its own log from the
// first entry), and again once it has filled in, in the background, the
// checkpoints before its snapshot.
func TestHistory_AtExactSnapshotJoined(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
	eu := top.admin("eu-west")
	h := recordHistory(t, eu, top.hubs[0].Bootstrap.Realm, historyWrites())
	snap := eu.Must(http.StatusCreated, "POST", "/v1/replicas/snapshot", nil)
	if tokenSeq(t, snap.Str("token")) < tokenSeq(t, h.head) {
		t.Fatalf("snapshot at %s, want one at the head %s or later", snap.Str("token"), h.head)
	}
	late := top.startJoiningRegion("late", func(c *daemon.Config) { c.CheckpointEvery = historyCheckpointEvery })
	rep := late.Replicas()[0]
	if rep.AppliedEntries() >= tokenSeq(t, h.head) {
		t.Fatalf("region late applied %d entries: it did not join from the snapshot", rep.AppliedEntries())
	}
	t.Run("eu-west", func(t *testing.T) { h.verify(t, eu, []string{"eu-west"}) })
	lc := top.admin("late")
	t.Run("joined", func(t *testing.T) { h.verify(t, lc, []string{"late"}) })
	eventlogtest.Eventually(t, time.Minute, "checkpoints before the snapshot", func() bool {
		cps := rep.Checkpoints()
		return len(cps) > 1 && cps[0] == historyCheckpointEvery
	})
	t.Logf("checkpoints after the fill: %v", rep.Checkpoints())
	t.Run("filled", func(t *testing.T) { h.verify(t, lc, []string{"late"}) })
}

// verifyAccessChanges: an identity's access changes after a token, which
// the server replays from its nearest checkpoint, are exactly those of the
// whole history (replayed from the first entry) after that token.
func (h *pastAnswers) verifyAccessChanges(t *testing.T, c *daemontest.Client) {
	type answer struct {
		Changes []json.RawMessage `json:"changes"`
	}
	tokenOf := func(raw json.RawMessage) uint64 {
		var ch struct{ Token string }
		if err := json.Unmarshal(raw, &ch); err != nil {
			t.Fatal(err)
		}
		return tokenSeq(t, ch.Token)
	}
	compared := 0
	for _, u := range h.users {
		var all answer
		r := c.Must(http.StatusOK, "GET", "/v1/identities/"+u+"/accessChanges", nil)
		if err := json.Unmarshal(r.Raw, &all); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(h.checks); i += 37 {
			from := h.checks[i].token
			var want []string
			for _, ch := range all.Changes {
				if tokenOf(ch) > tokenSeq(t, from) {
					want = append(want, string(ch))
				}
			}
			var got answer
			r := c.Must(http.StatusOK, "GET", "/v1/identities/"+u+"/accessChanges?from="+from, nil)
			if err := json.Unmarshal(r.Raw, &got); err != nil {
				t.Fatal(err)
			}
			var gotRaw []string
			for _, ch := range got.Changes {
				gotRaw = append(gotRaw, string(ch))
			}
			if !slices.Equal(gotRaw, want) {
				t.Fatalf("access changes of %s after %s: got %v, want %v", u, from, gotRaw, want)
			}
			compared += len(want)
		}
	}
	if compared == 0 {
		t.Fatal("no access change compared")
	}
	t.Logf("%d access changes equal from checkpoints and from the first entry", compared)
}
