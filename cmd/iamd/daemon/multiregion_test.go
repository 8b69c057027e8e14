package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/natsnode/natspki"
	"github.com/iam-project/iam/sim/faultproxy"
)

// multiIssuer is the one issuer every process of a test topology signs
// and verifies tokens with.
const multiIssuer = "http://iam.test"

// topology is a hub of iamd hub processes (one NATS cluster node each) and
// iamd region processes whose leaf links pass through fault proxies.
type topology struct {
	tb      testing.TB
	hubs    []*daemon.Main
	regions map[string]*daemon.Main
	links   map[string]faultproxy.Link
}

// topologyOptions tune startTopology.
type topologyOptions struct {
	hubNodes  int
	regions   []string
	fsync     bool
	heartbeat time.Duration
	maxLag    time.Duration
	logger    *slog.Logger
	// secure runs every NATS server in secure mode, with a PKI generated
	// for the test (--nats-tls-dir).
	secure bool
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startTopology starts o.hubNodes hub processes (together: a JetStream
// cluster needs a quorum to create the stream), the first of them
// bootstrapping the admin, then one region process per o.regions, each
// dialling every hub node through its own fault proxy.
func startTopology(tb testing.TB, o topologyOptions) *topology {
	tb.Helper()
	if o.logger == nil {
		o.logger = quietLogger()
	}
	if o.heartbeat == 0 {
		o.heartbeat = time.Second
	}
	t := &topology{tb: tb, regions: map[string]*daemon.Main{}, links: map[string]faultproxy.Link{}}
	secrets := tb.TempDir()
	if err := daemon.InitSecrets(secrets); err != nil { // shared by every hub node
		tb.Fatal(err)
	}
	tlsDir := ""
	if o.secure {
		tlsDir = tb.TempDir()
		var hubs []string
		for i := range o.hubNodes {
			hubs = append(hubs, fmt.Sprintf("hub-%d", i))
		}
		if err := natspki.Generate(tlsDir, natspki.Options{Hubs: hubs, Regions: o.regions}); err != nil {
			tb.Fatal(err)
		}
	}
	var routes []string
	if o.hubNodes > 1 {
		for range o.hubNodes {
			routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(eventlogtest.FreePort(tb)))
		}
	}
	t.hubs = make([]*daemon.Main, o.hubNodes)
	for i := range o.hubNodes {
		m := daemon.NewMain()
		c := &m.Config
		c.Mode, c.HTTPAddr, c.DataDir, c.SecretsDir = daemon.ModeHub, "127.0.0.1:0", tb.TempDir(), secrets
		c.Regions = []string{fmt.Sprintf("hub-%d", i)}
		c.Issuer, c.SyncAlways, c.HashParams = multiIssuer, o.fsync, auth.LowCostHashParams()
		c.Logger, c.Stderr = o.logger.With("proc", fmt.Sprintf("hub-%d", i)), io.Discard
		c.NATSName, c.LeafListen, c.Bootstrap = fmt.Sprintf("hub-%d", i), "127.0.0.1:-1", false
		c.HeartbeatInterval, c.MaxLag, c.NATSTLSDir = o.heartbeat, o.maxLag, tlsDir
		if len(routes) > 0 {
			c.ClusterListen, c.Routes = strings.TrimPrefix(routes[i], "nats-route://"), routes
		}
		t.hubs[i] = m
	}
	errs := make(chan error, o.hubNodes)
	for _, m := range t.hubs {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			errs <- m.Run(ctx)
		}()
	}
	for _, m := range t.hubs {
		tb.Cleanup(func() { m.Close() })
	}
	for range o.hubNodes {
		if err := <-errs; err != nil {
			tb.Fatalf("start hub: %v", err)
		}
	}
	// Bootstrap through the process beside the stream's leader: it is the
	// one that serves the regions' writes, and a writer learns entries
	// appended by other processes only on a conflict (see the report on
	// issue 4: the writer should catch up before deciding).
	leader := 0
	eventlogtest.Eventually(tb, 10*time.Second, "a stream leader", func() bool {
		for i, h := range t.hubs {
			if o.hubNodes == 1 || natsnode.StreamLeader(h.NATSServer(), eventlog.DefaultStream) {
				leader = i
				return true
			}
		}
		return false
	})
	t.hubs[0], t.hubs[leader] = t.hubs[leader], t.hubs[0]
	bctx, bcancel := context.WithTimeout(context.Background(), 30*time.Second)
	b, err := t.hubs[0].BootstrapNow(bctx)
	bcancel()
	if err != nil || b == nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	var leafURLs []string
	for _, h := range t.hubs {
		leafURLs = append(leafURLs, natsnode.LeafURL(h.NATSServer()))
	}
	for _, name := range o.regions {
		link, err := faultproxy.NewLink(name, leafURLs)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(link.Close)
		t.links[name] = link
		m := daemon.NewMain()
		c := &m.Config
		c.Mode, c.Region, c.HubLeaf = daemon.ModeRegion, name, link.URLs("nats-leaf")
		c.LogKeys = t.hubs[0].LogPublicKeysFile()
		c.HTTPAddr, c.DataDir, c.Issuer = "127.0.0.1:0", tb.TempDir(), multiIssuer
		c.Logger, c.Stderr, c.MaxLag, c.HeartbeatInterval = o.logger.With("proc", name), io.Discard, o.maxLag, o.heartbeat
		c.NATSTLSDir = tlsDir
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = m.Run(ctx)
		cancel()
		tb.Cleanup(func() { m.Close() })
		if err != nil {
			tb.Fatalf("start region %s: %v", name, err)
		}
		t.regions[name] = m
	}
	return t
}

// admin returns a client of the bootstrap admin talking to region.
func (t *topology) admin(region string) *daemontest.Client {
	t.tb.Helper()
	b := t.hubs[0].Bootstrap
	if b == nil {
		t.tb.Fatal("no bootstrap admin")
	}
	base := daemontest.URL(t.regions[region])
	return &daemontest.Client{TB: t.tb, Base: base, Token: daemontest.ClientToken(t.tb, base, b.ClientID, b.ClientSecret, "")}
}

func tokenSeq(tb testing.TB, tok string) uint64 {
	tb.Helper()
	rest, ok := strings.CutPrefix(tok, "ct1.")
	seq, err := strconv.ParseUint(rest, 36, 64)
	if !ok || err != nil {
		tb.Fatalf("bad consistency token %q", tok)
	}
	return seq
}

// digestAt waits until every region has applied the same position (the
// hub's heartbeats keep moving it) and returns their read-model digests.
func (t *topology) digests(min uint64) map[string]string {
	t.tb.Helper()
	var out map[string]string
	eventlogtest.Eventually(t.tb, 10*time.Second, "regions at one position", func() bool {
		out = map[string]string{}
		var seq uint64
		for name, m := range t.regions {
			d, s, err := m.Replicas()[0].Store().Digest()
			if err != nil {
				t.tb.Fatal(err)
			}
			if s < min || (seq != 0 && s != seq) {
				return false
			}
			seq, out[name] = s, fmt.Sprintf("%s@%d", d, s)
		}
		return true
	})
	return out
}

func sameDigests(tb testing.TB, ds map[string]string) {
	tb.Helper()
	var first string
	for name, d := range ds {
		if first == "" {
			first = d
		} else if d != first {
			tb.Errorf("region digests differ: %v", ds)
			return
		}
		tb.Logf("%s digest %s", name, d)
	}
}

// setupSubject creates an app allowed to read one resource, through
// region, and returns its id, its credentials and the resource.
func setupSubject(tb testing.TB, c *daemontest.Client, realm string) (appID, clientID, secret, resource, tok string) {
	tb.Helper()
	app := c.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "checker"})
	appID = app.Str("id")
	cred := c.Must(http.StatusCreated, "POST", "/v1/apps/"+appID+"/credentials", nil)
	resource = "hrn:here:data::" + realm + ":catalog-1"
	pol := c.Must(http.StatusCreated, "POST", "/v1/policies", map[string]any{"name": "read-catalog",
		"statements": []map[string]any{{"effect": "allow", "actions": []string{"read"}, "resources": []string{resource}}}})
	att := c.Must(http.StatusOK, "PUT", "/v1/policies/"+pol.Str("id")+"/attachments/"+appID, nil)
	return appID, cred.Str("clientId"), cred.Str("clientSecret"), resource, att.Str("consistencyToken")
}

func checkBody(subject, resource, mode, tok string, waitMs int) map[string]any {
	c := map[string]any{"mode": mode}
	if tok != "" {
		c["token"] = tok
	}
	if waitMs >= 0 {
		c["waitMs"] = waitMs
	}
	return map[string]any{"subject": subject, "action": "read", "resource": resource, "consistency": c}
}

// TestMultiRegion_ForwardedWrite is the first slice: one hub node, one
// region; a write through the region is forwarded and answered with a
// token, and a check in the region with that token sees it.
func TestMultiRegion_ForwardedWrite(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
	admin := top.admin("eu-west")
	realm := top.hubs[0].Bootstrap.Realm
	appID, _, _, resource, tok := setupSubject(t, admin, realm)
	r := admin.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, "at_least_as_fresh", tok, 2000))
	if r.Body["allowed"] != true || r.Str("region") != "eu-west" || tokenSeq(t, r.Str("consistencyToken")) < tokenSeq(t, tok) {
		t.Fatalf("check: got %s, want allowed in eu-west at %s or later", r.Raw, tok)
	}
	// A management read in the region sees the region's own acknowledged write.
	admin.Must(http.StatusOK, "GET", "/v1/apps/"+appID, nil)
}

// TestMultiRegion_SecureForwardedWrite is ForwardedWrite with every NATS
// server in secure mode: the region's leaf link authenticates with its
// certificate and nkey and may do only what a region needs, which must be
// enough to join, follow the log, relay a write and check.
func TestMultiRegion_SecureForwardedWrite(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}, secure: true})
	admin := top.admin("eu-west")
	realm := top.hubs[0].Bootstrap.Realm
	appID, _, _, resource, tok := setupSubject(t, admin, realm)
	r := admin.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, "at_least_as_fresh", tok, 2000))
	if r.Body["allowed"] != true || r.Str("region") != "eu-west" || tokenSeq(t, r.Str("consistencyToken")) < tokenSeq(t, tok) {
		t.Fatalf("check: got %s, want allowed in eu-west at %s or later", r.Raw, tok)
	}
	admin.Must(http.StatusOK, "GET", "/v1/apps/"+appID, nil)
	// The region may not read the key vault's bucket; it asks the hub for
	// the user's key, and shows the sealed e-mail.
	u := admin.Must(http.StatusCreated, "POST", "/v1/users", map[string]any{"email": "ann@example.com", "name": "Ann"})
	got := admin.Must(http.StatusOK, "GET", "/v1/users/"+u.Str("id"), nil, "Consistency-Token", u.Str("consistencyToken"))
	if got.Str("email") != "ann@example.com" || got.Str("name") != "Ann" {
		t.Errorf("user read in the secure region: got %s, want its e-mail and name", got.Raw)
	}
	if a := top.regions["eu-west"].NATSServer().Addr(); a != nil {
		t.Errorf("secure region listens on %s, want no listener", a)
	}
}

// TestMultiRegion_CutAndHubLoss runs a 3-node hub and two regions whose
// leaf links pass through fault proxies: writes through either region are
// forwarded and answered with a token that checks in both regions honour;
// one region's link is cut for 15s while writes go on through the other;
// then one hub node is shut down during writes.
func TestMultiRegion_CutAndHubLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s partition")
	}
	const maxLag = 5 * time.Second
	top := startTopology(t, topologyOptions{hubNodes: 3, regions: []string{"eu-west", "us-east"}, fsync: true, maxLag: maxLag})
	realm := top.hubs[0].Bootstrap.Realm
	eu, us := top.admin("eu-west"), top.admin("us-east")

	// (a) A write through a region is forwarded; both regions honour its token.
	appID, clientID, secret, resource, tok := setupSubject(t, eu, realm)
	for _, c := range []*daemontest.Client{eu, us} {
		r := c.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, "at_least_as_fresh", tok, 5000))
		if r.Body["allowed"] != true {
			t.Fatalf("check at %s: got %s, want allowed", tok, r.Raw)
		}
	}
	g := us.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "via-us"})
	eu.Must(http.StatusOK, "GET", "/v1/groups/"+g.Str("id"), nil, "Consistency-Token", g.Str("consistencyToken"))

	// The app checks its own access in us-east during the cut: its token
	// is taken now, and us-east has applied its position before the cut.
	self := &daemontest.Client{TB: t, Base: daemontest.URL(top.regions["us-east"]), Token: daemontest.ClientToken(t, daemontest.URL(top.regions["us-east"]), clientID, secret, "")}
	self.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, "fully_consistent", "", 5000))

	// (b) Cut us-east off for 15 s while writing through eu-west.
	usRep := top.regions["us-east"].Replicas()[0]
	const cut = 15 * time.Second
	top.links["us-east"].Cut()
	cutAt := time.Now()
	var lastTok string
	var writes int
	for time.Since(cutAt) < cut {
		r := eu.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": fmt.Sprintf("g-%d", writes)})
		lastTok = r.Str("consistencyToken")
		writes++
		since := time.Since(cutAt)
		if writes%10 == 0 {
			// Reads still answered in the cut region, never stale for a newer token.
			ml := self.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, "minimize_latency", "", -1))
			if ml.Body["allowed"] != true || ml.Str("region") != "us-east" {
				t.Errorf("minimize_latency check in the cut region: got %s", ml.Raw)
			}
			fresh := self.Do("POST", "/v1/check", checkBody(appID, resource, "at_least_as_fresh", lastTok, 100))
			if fresh.Status != http.StatusServiceUnavailable || fresh.Str("code") != "replica_behind" || fresh.Header.Get("Retry-After") == "" {
				t.Errorf("at_least_as_fresh %s in the cut region: got %d %s (Retry-After %q), want 503 replica_behind with Retry-After",
					lastTok, fresh.Status, fresh.Raw, fresh.Header.Get("Retry-After"))
			}
			// Writes through the cut region: 503 unavailable with Retry-After.
			if since > 2*time.Second && writes%50 == 0 {
				w := us.Do("POST", "/v1/groups", map[string]any{"name": "while-cut"})
				if w.Status != http.StatusServiceUnavailable || w.Str("code") != "unavailable" || w.Header.Get("Retry-After") == "" {
					t.Errorf("write through the cut region: got %d %s, want 503 unavailable with Retry-After", w.Status, w.Raw)
				}
			}
		}
		time.Sleep(20 * time.Millisecond) // the scenario: a steady write rate for the whole cut, not a wait for a condition
	}
	// Its lag is reported, from both regions, and it is not ready past the threshold.
	lagOf := func(c *daemontest.Client, region string) (float64, bool) {
		r := c.Must(http.StatusOK, "GET", "/v1/replicas", nil)
		rows, _ := r.Body["replicas"].([]any)
		for _, row := range rows {
			m, _ := row.(map[string]any)
			if m["region"] == region {
				lag, _ := m["lagSeconds"].(float64)
				healthy, _ := m["healthy"].(bool)
				return lag, healthy
			}
		}
		t.Fatalf("GET /v1/replicas at %s: no row for %s in %s", c.Base, region, r.Raw)
		return 0, false
	}
	selfLag, selfHealthy := lagOf(self, "us-east")
	euLag, euHealthy := lagOf(eu, "us-east")
	t.Logf("after a %s cut with %d writes: us-east lag %.1fs as seen by itself (healthy %t), %.1fs by eu-west (healthy %t)",
		cut, writes, selfLag, selfHealthy, euLag, euHealthy)
	if want := (cut - 2*time.Second).Seconds(); selfLag < want || euLag < want {
		t.Errorf("us-east lag: got %.1fs (itself) and %.1fs (eu-west), want at least %.0fs", selfLag, euLag, want)
	}
	if selfHealthy || euHealthy {
		t.Errorf("us-east healthy during a cut longer than the %s threshold, want unhealthy", maxLag)
	}
	rz := self.Do("GET", "/readyz", nil)
	if rz.Status != http.StatusServiceUnavailable {
		t.Errorf("us-east /readyz during the cut: got %d, want 503", rz.Status)
	}
	if euSelf, ok := lagOf(eu, "eu-west"); euSelf > 2 || !ok {
		t.Errorf("eu-west's own lag during the cut: got %.1fs (healthy %t), want current", euSelf, ok)
	}

	// Heal: us-east becomes current (the 2 s goal is a timing goal, judged
	// by iamsim's partition-and-heal scenario, not here: logged only).
	want := tokenSeq(t, lastTok)
	if err := top.links["us-east"].Heal(); err != nil {
		t.Fatal(err)
	}
	healAt := time.Now()
	eventlogtest.Eventually(t, 10*time.Second, "us-east to catch up", func() bool { return usRep.Applied() >= want })
	catchUp := time.Since(healAt)
	t.Logf("us-east current %s after the link healed (goal 2s; applied %d, wanted %d, %d writes during the cut)", catchUp, usRep.Applied(), want, writes)
	self.Must(http.StatusOK, "POST", "/v1/check", checkBody(appID, resource, "at_least_as_fresh", lastTok, 100))
	eventlogtest.Eventually(t, 5*time.Second, "us-east ready again", func() bool { return self.Do("GET", "/readyz", nil).Status == http.StatusOK })
	sameDigests(t, top.digests(want))

	// Shut one hub node down while writing through both regions.
	type acked struct{ id, tok string }
	var mu sync.Mutex
	var acks []acked
	var failed int
	refusals := map[int]int{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, c := range []*daemontest.Client{eu, us} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := c.Do("POST", "/v1/groups", map[string]any{"name": fmt.Sprintf("k-%d", i)})
				mu.Lock()
				if r.Status == http.StatusCreated {
					acks = append(acks, acked{r.Str("id"), r.Str("consistencyToken")})
				} else {
					failed++
					refusals[r.Status]++
				}
				mu.Unlock()
			}
		}()
	}
	nAcked := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	eventlogtest.Eventually(t, 10*time.Second, "writes acknowledged before the loss", func() bool { return nAcked() >= 20 })
	// The last hub process is never the one that bootstrapped; it may or
	// may not be beside the stream's leader.
	victim := top.hubs[2]
	victimLed := victim.NATSServer().JetStreamIsStreamLeader("$G", "IAM")
	t.Logf("shutting down hub node %s (stream leader: %t)", victim.Config.NATSName, victimLed)
	victim.Close()
	time.Sleep(3 * time.Second) // the scenario: keep writing through the loss (and any election) for 3 s
	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged around the hub node loss, %d refused (by status: %v; leader was lost: %t)",
		len(acks), failed, refusals, victimLed)
	if len(acks) == 0 {
		t.Fatal("no write acknowledged")
	}
	var maxSeq uint64
	for _, a := range acks {
		maxSeq = max(maxSeq, tokenSeq(t, a.tok))
	}
	for _, c := range []*daemontest.Client{eu, us} {
		for _, a := range acks {
			c.Must(http.StatusOK, "GET", "/v1/groups/"+a.id, nil, "Consistency-Token", a.tok)
		}
	}
	sameDigests(t, top.digests(maxSeq))
}

// TestMultiRegion_RevokedSigningKey: once a signing key's revocation has
// reached a region's replica, the region refuses the tokens the key signed,
// though its copy of the hub's keys (fetched before) and its cache of
// verified tokens still hold them; a token of the new signer works there.
func TestMultiRegion_RevokedSigningKey(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
	region := top.regions["eu-west"]
	base := daemontest.URL(region)
	admin := top.admin("eu-west")
	realm := top.hubs[0].Bootstrap.Realm
	_, clientID, secret, _, _ := setupSubject(t, admin, realm)
	svc := &daemontest.Client{TB: t, Base: base, Token: daemontest.ClientToken(t, base, clientID, secret, "")}
	svc.Must(http.StatusOK, "GET", "/v1/roles", nil)
	// The signing keys are listed on the hub only; the token names its own.
	head, _, _ := strings.Cut(svc.Token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(head)
	var header struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &header); err != nil || header.KID == "" {
		t.Fatalf("token header %s: got no kid (%v)", raw, err)
	}
	kid := header.KID

	ct := admin.Must(http.StatusOK, "DELETE", "/v1/signingKeys/"+kid, nil).Str("consistencyToken")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := region.Replicas()[0].WaitFor(ctx, tokenSeq(t, ct), 10*time.Second); err != nil {
		t.Fatalf("region replica at the revocation: %v", err)
	}
	if r := svc.Do("GET", "/v1/roles", nil); r.Status != http.StatusUnauthorized || r.Str("code") != "unauthenticated" {
		t.Fatalf("the revoked key's token in the region: got %d %s, want 401 unauthenticated", r.Status, r.Raw)
	}
	// The new signer's kid is unknown to the region's copy of the keys,
	// which it fetches again at most once per auth.DefaultJWKSRefresh.
	svc.Token = daemontest.ClientToken(t, base, clientID, secret, "")
	eventlogtest.Eventually(t, 2*auth.DefaultJWKSRefresh, "the new signer's token works in the region", func() bool {
		return svc.Do("GET", "/v1/roles", nil).Status == http.StatusOK
	})
}

// TestMultiRegion_RevokedSignerOnEveryHubNode: hub nodes share their key
// file but not their memory; a signer revoked through one node is replaced
// on another as soon as that node's replica holds the revocation, so no node
// goes on signing tokens that are refused.
func TestMultiRegion_RevokedSignerOnEveryHubNode(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 3})
	b := top.hubs[0].Bootstrap
	client := func(m *daemon.Main) *daemontest.Client {
		base := daemontest.URL(m)
		return &daemontest.Client{TB: t, Base: base, Token: daemontest.ClientToken(t, base, b.ClientID, b.ClientSecret, "")}
	}
	kidOf := func(token string) string {
		head, _, _ := strings.Cut(token, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(head)
		var header struct {
			KID string `json:"kid"`
		}
		if err := json.Unmarshal(raw, &header); err != nil || header.KID == "" {
			t.Fatalf("token header %s: got no kid (%v)", raw, err)
		}
		return header.KID
	}
	first, second := client(top.hubs[0]), client(top.hubs[1])
	kid := kidOf(first.Token)
	if got := kidOf(second.Token); got != kid {
		t.Fatalf("signers of two hub nodes: got %s and %s, want one key from the shared file", kid, got)
	}

	ct := first.Must(http.StatusOK, "DELETE", "/v1/signingKeys/"+kid, nil).Str("consistencyToken")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := top.hubs[1].Replicas()[0].WaitFor(ctx, tokenSeq(t, ct), 10*time.Second); err != nil {
		t.Fatalf("second node's replica at the revocation: %v", err)
	}
	if r := second.Do("GET", "/v1/roles", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("the revoked key's token on the second node: got %d %s, want 401", r.Status, r.Raw)
	}
	second = client(top.hubs[1])
	if got := kidOf(second.Token); got == kid {
		t.Fatalf("a new token of the second node: signed by the revoked %s, want another key", kid)
	}
	second.Must(http.StatusOK, "GET", "/v1/roles", nil)
	if jwks := second.Must(http.StatusOK, "GET", "/.well-known/jwks.json", nil); strings.Contains(string(jwks.Raw), kid) {
		t.Errorf("second node's JWKS: got %s, want no %s", jwks.Raw, kid)
	}
}
