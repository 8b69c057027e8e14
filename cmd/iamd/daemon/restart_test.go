package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/writer"
)

// stopIamd closes m the way SIGTERM does (the Close that startIamd
// registered for cleanup then does nothing: see TestMain_CloseTwice).
func stopIamd(tb testing.TB, m *daemon.Main) {
	tb.Helper()
	// The client's spare connections (dialled but never used) would hold
	// http.Server.Shutdown for 5s; a real client going away does the same.
	http.DefaultClient.CloseIdleConnections()
	if err := m.Close(); err != nil {
		tb.Errorf("close iamd: %v", err)
	}
}

// TestMain_CloseWithOpenChangeFeed: SIGTERM while a client watches
// /v1/changes stops promptly and cleanly. http.Server.Shutdown does not
// cancel the contexts of running requests, so the stream must be ended by
// iamd itself, or Close waits out its 5s and fails.
func TestMain_CloseWithOpenChangeFeed(t *testing.T) {
	m := daemontest.Start(t, "")
	admin := daemontest.AdminClient(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := daemontest.GetChanges(ctx, t, daemontest.URL(m), admin.Token)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/changes: got %d, want 200", resp.StatusCode)
	}
	start := time.Now()
	http.DefaultClient.CloseIdleConnections()
	err := m.Close()
	if took := time.Since(start); err != nil || took > 3*time.Second {
		t.Errorf("Close with an open change feed: got %v after %s, want nil within 3s", err, took.Round(time.Millisecond))
	}
	// The stream ends with the server, rather than outliving it.
	if _, err := io.Copy(io.Discard, resp.Body); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the change feed was still open %s after Close", time.Since(start).Round(time.Second))
	}
}

// TestMain_CloseTwice: a second Close (a deferred Close after an explicit
// one, as main and the test harness both do) does nothing and does not
// panic (Pebble panics on closing a closed DB).
func TestMain_CloseTwice(t *testing.T) {
	m := daemontest.Start(t, "")
	http.DefaultClient.CloseIdleConnections()
	first := m.Close()
	defer func() {
		if v := recover(); v != nil {
			t.Errorf("second Close panicked: %v", v)
		}
	}()
	if second := m.Close(); !errors.Is(second, first) && (first != nil || second != nil) {
		t.Errorf("second Close: got %v, want the first's %v", second, first)
	}
}

// workload is a record of acknowledged writes against one realm: what was
// created, what every entity read as, and what every check answered.
type workload struct {
	realm    string
	entities []string // "kind/id", deleted ones included
	reads    map[string]readResult
	checks   []map[string]any
	answers  []checkAnswer
	creds    [][2]string // client id, secret of apps made on the way
	apiKeys  []string
	keyed    daemontest.Response // a create made with an Idempotency-Key
	keyedReq map[string]any
	last     uint64 // the highest consistency token acknowledged
	lastTok  string
	feed     []daemontest.SSEEvent // the realm's change feed up to lastTok
	after    []string              // tokens of the sentinel writes made after lastTok
	users    []string              // every user listed, in order
}

type readResult struct {
	status int
	body   map[string]any
}

type checkAnswer struct {
	allowed bool
	reason  string
}

// decision is the part of an answer that must not change: allowed, and the
// reason with the name of the deciding statement dropped, since when several
// statements allow (or deny), which one the reason names follows Go's map
// order in iam.State.Check and differs from replica to replica.
func (a checkAnswer) decision() checkAnswer {
	for _, p := range []string{"allowed by ", "denied by "} {
		if strings.HasPrefix(a.reason, p) {
			return checkAnswer{a.allowed, p + "…"}
		}
	}
	return a
}

func (w *workload) hrn(res string) string { return "hrn:here:data::" + w.realm + ":" + res }

// run makes about n acknowledged writes of every kind, half of them from
// concurrent goroutines, then records reads and check answers.
func (w *workload) run(t *testing.T, m *daemon.Main, admin *daemontest.Client, n int) {
	t.Helper()
	w.realm = m.Bootstrap.Realm
	rng := rand.New(rand.NewPCG(7, 11))
	var mu sync.Mutex
	note := func(r daemontest.Response) {
		seq, err := api.ParseToken("t", r.Str("consistencyToken"))
		if err != nil {
			t.Errorf("write answered without a token: %d %s", r.Status, r.Raw)
			return
		}
		mu.Lock()
		if seq > w.last {
			w.last, w.lastTok = seq, r.Str("consistencyToken")
		}
		mu.Unlock()
	}
	writes := 0
	// do sends one write; safe from any goroutine (no FailNow).
	do := func(want int, method, path string, body any, headers ...string) daemontest.Response {
		r := admin.Do(method, path, body, headers...)
		if r.Status != want {
			t.Errorf("%s %s: got %d %s, want %d", method, path, r.Status, r.Raw, want)
			return r
		}
		note(r)
		mu.Lock()
		writes++
		mu.Unlock()
		return r
	}
	parallel := func(k int, fn func(i int)) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range k {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				fn(i)
			}()
		}
		wg.Wait()
	}
	sizes := map[string]int{"users": n * 25 / 100, "apps": n * 5 / 100, "groups": n * 10 / 100, "policies": n * 10 / 100, "projects": n * 3 / 100}
	ids := map[string][]string{}
	for _, kind := range []string{"users", "apps", "groups", "policies", "projects"} {
		made := make([]string, sizes[kind])
		parallel(sizes[kind], func(i int) {
			var body any
			switch kind {
			case "users":
				body = map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "name": fmt.Sprint("User ", i)}
			case "policies":
				effect := "allow"
				if i%5 == 4 {
					effect = "deny"
				}
				body = map[string]any{"name": fmt.Sprint("policy ", i), "statements": []any{map[string]any{
					"effect": effect, "actions": []string{"read", fmt.Sprint("act", i%3)},
					"resources": []string{w.hrn(fmt.Sprintf("catalog/%d/*", i%7)), w.hrn(fmt.Sprintf("item/%d", i))}}}}
			default:
				body = map[string]any{"name": fmt.Sprint(kind, " ", i)}
			}
			made[i] = do(http.StatusCreated, "POST", "/v1/"+kind, body).Str("id")
		})
		ids[kind] = made
		for _, id := range made {
			w.entities = append(w.entities, kind+"/"+id)
		}
	}
	users, apps, groups, policies, projects := ids["users"], ids["apps"], ids["groups"], ids["policies"], ids["projects"]
	pick := func(s []string) string { return s[rng.IntN(len(s))] }

	// Edges, sequentially planned (the rng is not shared), then sent in parallel.
	type op struct {
		method, path string
		body         any
	}
	var ops []op
	seen := map[string]bool{}
	add := func(o op) {
		if !seen[o.method+o.path] {
			seen[o.method+o.path] = true
			ops = append(ops, o)
		}
	}
	for len(ops) < n*20/100 {
		add(op{"PUT", "/v1/groups/" + pick(groups) + "/members/" + pick(users), nil})
	}
	members := map[string][]string{} // group → users put in it
	for _, o := range ops {
		parts := strings.Split(o.path, "/") // /v1/groups/{g}/members/{u}
		members[parts[3]] = append(members[parts[3]], parts[5])
	}
	type grant struct {
		policy  int
		subject string
	}
	var grants []grant
	for len(ops) < n*32/100 {
		pi := rng.IntN(len(policies))
		target := pick(groups)
		if rng.IntN(2) == 0 || len(members[target]) == 0 {
			target = pick(users)
			grants = append(grants, grant{pi, target})
		} else {
			grants = append(grants, grant{pi, members[target][0]})
		}
		add(op{"PUT", "/v1/policies/" + policies[pi] + "/attachments/" + target, nil})
	}
	// Project i's home resource is reached by policies[i+2], given to users[i].
	home := func(i int) string { return w.hrn(fmt.Sprintf("catalog/%d/home%d", (i+2)%7, i)) }
	for i, p := range projects {
		add(op{"PUT", "/v1/projects/" + p + "/members/" + groups[i], map[string]any{"policies": []string{policies[i], policies[i+1]}}})
		add(op{"PUT", "/v1/projects/" + p + "/members/" + users[i], map[string]any{"policies": []string{policies[i+2]}}})
		add(op{"PUT", "/v1/projects/" + p + "/resources/" + url.PathEscape(home(i)), map[string]any{"relation": "home"}})
	}
	for i := range 3 {
		add(op{"PUT", "/v1/identities/" + users[i] + "/roles/OrgInviter", nil})
		add(op{"PUT", "/v1/identities/" + apps[i] + "/roles/ResourceManager", nil})
	}
	parallel(len(ops), func(i int) { do(http.StatusOK, ops[i].method, ops[i].path, ops[i].body) })

	// Order-dependent writes, one after another.
	for i := 1; i < min(len(projects), 6); i++ { // a resource is linked into at most 5 projects
		do(http.StatusOK, "PUT", "/v1/projects/"+projects[i]+"/resources/"+url.PathEscape(home(0)), map[string]any{"relation": "link"})
	}
	for i := range 3 {
		do(http.StatusOK, "PATCH", "/v1/users/"+users[len(users)-1-i], map[string]any{"status": "deactivated"})
		do(http.StatusOK, "DELETE", "/v1/users/"+users[len(users)-4-i], nil)
		do(http.StatusOK, "DELETE", "/v1/groups/"+groups[i]+"/members/"+users[i], nil)
	}
	do(http.StatusOK, "DELETE", "/v1/policies/"+policies[0]+"/attachments/"+groups[0], nil)
	do(http.StatusOK, "DELETE", "/v1/identities/"+apps[0]+"/roles/ResourceManager", nil)
	for i := range 3 {
		r := do(http.StatusCreated, "POST", "/v1/apps/"+apps[i]+"/credentials", nil)
		w.creds = append(w.creds, [2]string{r.Str("clientId"), r.Str("clientSecret")})
		w.apiKeys = append(w.apiKeys, do(http.StatusCreated, "POST", "/v1/apps/"+apps[i]+"/apiKeys", nil).Str("apiKey"))
	}
	w.keyedReq = map[string]any{"email": "keyed@example.com", "name": "Keyed", "password": "keyed-password"}
	w.keyed = do(http.StatusCreated, "POST", "/v1/users", w.keyedReq, "Idempotency-Key", "restart-key")
	w.entities = append(w.entities, "users/"+w.keyed.Str("id"))
	for len(w.entities) < n+40 && writes < n {
		// Top up with more users until n writes are acknowledged.
		i := writes
		id := do(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": fmt.Sprintf("extra%d@example.com", i), "name": "Extra"}).Str("id")
		w.entities = append(w.entities, "users/"+id)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d acknowledged writes, last token %s", writes, w.lastTok)

	// Checks: realm-wide and scoped, over users that exist, were
	// deactivated or deleted, and over apps.
	for _, g := range grants {
		w.checks = append(w.checks,
			map[string]any{"subject": g.subject, "action": "read", "resource": w.hrn(fmt.Sprintf("catalog/%d/x", g.policy%7))},
			map[string]any{"subject": g.subject, "action": fmt.Sprint("act", g.policy%3), "resource": w.hrn(fmt.Sprintf("item/%d", g.policy))})
	}
	for i, p := range projects {
		scope := "hrn:here:authorization::" + w.realm + ":project/" + p
		w.checks = append(w.checks,
			map[string]any{"subject": users[i], "action": "read", "resource": home(i), "scope": scope},
			map[string]any{"subject": users[i], "action": "read", "resource": home(i)},
			map[string]any{"subject": users[i], "action": "read", "resource": home(0), "scope": scope},
			map[string]any{"subject": pick(users), "action": "read", "resource": home(i), "scope": scope})
	}
	subjects := append(append([]string{}, users...), apps...)
	for i := range 120 {
		q := map[string]any{"subject": subjects[i%len(subjects)], "action": []string{"read", "act1", "write"}[i%3]}
		switch i % 4 {
		case 0:
			q["resource"] = w.hrn(fmt.Sprintf("catalog/%d/x", rng.IntN(8)))
		case 1:
			q["resource"] = w.hrn(fmt.Sprintf("item/%d", rng.IntN(len(policies)+2)))
		case 2:
			p := rng.IntN(len(projects))
			q["resource"] = home([]int{0, p}[rng.IntN(2)])
			q["scope"] = "hrn:here:authorization::" + w.realm + ":project/" + projects[p]
			q["subject"] = []string{users[p], users[rng.IntN(len(users))]}[rng.IntN(2)]
		case 3:
			q["resource"] = home(rng.IntN(len(projects)))
		}
		w.checks = append(w.checks, q)
	}
	w.answers = w.ask(t, admin, m.Config.Regions)
	allowed := 0
	for _, a := range w.answers {
		if a.allowed {
			allowed++
		}
	}
	if allowed < 10 || allowed > len(w.answers)-10 {
		t.Fatalf("%d of %d checks allowed: the workload should give a mix", allowed, len(w.answers))
	}
	w.reads = w.read(t, admin)
	w.users = daemontest.ListIDs(admin, "/v1/users", 100)
	w.feed = w.readFeed(t, admin)
}

// readFeed reads the realm's whole change feed up to lastTok: the log as
// the realm's clients see it, redacted.
func (w *workload) readFeed(t *testing.T, c *daemontest.Client) []daemontest.SSEEvent {
	t.Helper()
	s := daemontest.OpenFeed(t, c.Base, c.Token, "")
	defer s.Close()
	return s.Until(t, w.lastTok)
}

// ask answers every check in every region at least as fresh as the last
// acknowledged write, and fails unless the regions agree.
func (w *workload) ask(t *testing.T, c *daemontest.Client, regions []string) []checkAnswer {
	t.Helper()
	out := make([]checkAnswer, len(w.checks))
	for i, q := range w.checks {
		q = mapsClone(q)
		q["consistency"] = map[string]any{"mode": "at_least_as_fresh", "token": w.lastTok, "waitMs": 10000}
		for j, region := range regions {
			rc := *c
			rc.Region = region
			r := rc.Must(http.StatusOK, "POST", "/v1/check", q)
			a := checkAnswer{r.Body["allowed"] == true, r.Str("reason")}
			if seq, err := api.ParseToken("t", r.Str("consistencyToken")); err != nil || seq < w.last {
				t.Errorf("check %d in %s answered at %s, before %s", i, region, r.Str("consistencyToken"), w.lastTok)
			}
			if j == 0 {
				out[i] = a
			} else if a.decision() != out[i].decision() {
				t.Errorf("check %d %v: %s answers %+v, %s answers %+v", i, q, region, a, regions[0], out[i])
			}
		}
	}
	return out
}

func (w *workload) read(t *testing.T, c *daemontest.Client) map[string]readResult {
	t.Helper()
	out := map[string]readResult{}
	for _, e := range w.entities {
		r := c.Do("GET", "/v1/"+e, nil)
		if r.Status != http.StatusOK && r.Status != http.StatusNotFound {
			t.Errorf("GET %s: got %d %s", e, r.Status, r.Raw)
		}
		out[e] = readResult{r.Status, r.Body}
		if kind, id, _ := strings.Cut(e, "/"); r.Status == http.StatusOK && (kind == "users" || kind == "apps") {
			perms := c.Do("GET", "/v1/identities/"+id+"/permissions", nil)
			out[e+"/permissions"] = readResult{perms.Status, perms.Body}
		}
	}
	return out
}

// verify asserts that c's iamd holds everything w recorded.
func (w *workload) verify(t *testing.T, m *daemon.Main, c *daemontest.Client) {
	t.Helper()
	// The log holds exactly what it held: every entry, in order, the same.
	if feed := w.readFeed(t, c); !reflect.DeepEqual(feed, w.feed) {
		t.Errorf("the change feed up to %s differs after the restart: got %d events, want %d", w.lastTok, len(feed), len(w.feed))
		for i := range min(len(feed), len(w.feed)) {
			if feed[i] != w.feed[i] {
				t.Errorf("first difference at %d:\n got %+v\nwant %+v", i, feed[i], w.feed[i])
				break
			}
		}
	}
	got := w.read(t, c)
	for e, want := range w.reads {
		g := got[e]
		if g.status != want.status {
			t.Errorf("GET %s: got %d, want %d", e, g.status, want.status)
			continue
		}
		if want.status == http.StatusOK && !reflect.DeepEqual(g.body, want.body) {
			t.Errorf("GET %s:\n got %v\nwant %v", e, g.body, want.body)
		}
	}
	if users := daemontest.ListIDs(c, "/v1/users", 100); !reflect.DeepEqual(users, w.users) {
		t.Errorf("users after restart: got %d %v, want %d", len(users), users, len(w.users))
	}
	answers := w.ask(t, c, m.Config.Regions)
	for i := range answers {
		if answers[i].decision() != w.answers[i].decision() {
			t.Errorf("check %d %v: got %+v after restart, want %+v", i, w.checks[i], answers[i], w.answers[i])
		}
	}
	for _, cr := range w.creds {
		daemontest.ClientToken(t, daemontest.URL(m), cr[0], cr[1], "")
	}
	for _, k := range w.apiKeys {
		kc := c.With("")
		kc.Must(http.StatusOK, "POST", "/v1/check", map[string]any{"action": "read", "resource": w.hrn("x")}, "X-API-Key", k)
	}
	// The Idempotency-Key outlives the restart: the retry answers as the first.
	r := c.Must(http.StatusCreated, "POST", "/v1/users", w.keyedReq, "Idempotency-Key", "restart-key")
	if r.Str("id") != w.keyed.Str("id") || r.Str("consistencyToken") != w.keyed.Str("consistencyToken") {
		t.Errorf("keyed retry after restart: got %s, want the id and token of %s", r.Raw, w.keyed.Raw)
	}
	// Nothing was appended since lastTok but the sentinels: not the keyed
	// retry, not a second bootstrap.
	got2 := daemontest.AppendedSince(t, c, w.lastTok)
	if want := append(slices.Clone(w.after), got2[len(got2)-1]); !slices.Equal(got2, want) {
		t.Errorf("changes after the last pre-restart write: got %v, want only the sentinels %v", got2, want)
	}
	w.after = got2
}

func mapsClone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestIamd_Restart: a restart of iamd on the same --data keeps every
// acknowledged write: no second bootstrap, the old admin credentials work,
// every entity reads as before, every check answers as before (at least as
// fresh as the last pre-restart token); and so does a restart whose
// replicas' Pebble directories were deleted, rebuilt from the log.
func TestIamd_Restart(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 120
	}
	dir := t.TempDir()
	m := daemontest.Start(t, dir)
	boot := *m.Bootstrap
	bootPath := filepath.Join(dir, "bootstrap-admin.json")
	bootFile, err := os.ReadFile(bootPath)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk writer.BootstrapAdmin
	if err := json.Unmarshal(bootFile, &onDisk); err != nil || onDisk.ClientID != boot.ClientID || onDisk.ClientSecret != boot.ClientSecret || onDisk.Realm != boot.Realm {
		t.Fatalf("bootstrap-admin.json %s does not hold the bootstrap admin (%v)", bootFile, err)
	}
	if fi, err := os.Stat(bootPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("bootstrap-admin.json mode: got %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	w := &workload{}
	w.run(t, m, daemontest.AdminClient(t, m), n)
	stopIamd(t, m)

	restart := func(t *testing.T) {
		m := daemontest.Start(t, dir)
		if m.Bootstrap != nil {
			t.Errorf("restart bootstrapped again: realm %s", m.Bootstrap.Realm)
		}
		if data, err := os.ReadFile(bootPath); err != nil || string(data) != string(bootFile) {
			t.Errorf("bootstrap-admin.json changed on restart (%v):\n got %s\nwant %s", err, data, bootFile)
		}
		c := &daemontest.Client{TB: t, Base: daemontest.URL(m), Token: daemontest.ClientToken(t, daemontest.URL(m), boot.ClientID, boot.ClientSecret, "")}
		w.verify(t, m, c)
		var realms []string
		_ = m.Writer().View(func(st *iam.State) error { realms = st.RealmIDs(); return nil })
		if len(realms) != 1 || realms[0] != boot.Realm {
			t.Errorf("realms after restart: got %v, want only %s", realms, boot.Realm)
		}
		stopIamd(t, m)
	}
	t.Run("same data", restart)
	t.Run("replicas deleted", func(t *testing.T) {
		entries, err := os.ReadDir(filepath.Join(dir, "replicas"))
		if err != nil || len(entries) == 0 {
			t.Fatalf("no replica directories under %s (%v)", dir, err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		if err := os.RemoveAll(filepath.Join(dir, "replicas")); err != nil {
			t.Fatal(err)
		}
		t.Logf("deleted the read models of %v", names)
		restart(t)
	})
}
