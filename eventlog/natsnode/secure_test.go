package natsnode_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/bus"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/natsnode/natspki"
)

var secureRegions = []string{"eu-west", "us-east"}

// secureTopology is a secured 3-node hub and two regions on loopback.
type secureTopology struct {
	dir        string
	hub        []*server.Server
	routePorts []int
	regions    map[string]*server.Server
}

func (st *secureTopology) leafURLs() []string {
	var urls []string
	for _, s := range st.hub {
		urls = append(urls, natsnode.LeafURL(s))
	}
	return urls
}

func startSecure(t *testing.T) *secureTopology {
	t.Helper()
	st := &secureTopology{dir: t.TempDir(), regions: map[string]*server.Server{}}
	hubs := []string{"hub-0", "hub-1", "hub-2"}
	if err := natspki.Generate(st.dir, natspki.Options{Hubs: hubs, Regions: secureRegions}); err != nil {
		t.Fatal(err)
	}
	var routes []string
	for range hubs {
		p := eventlogtest.FreePort(t)
		st.routePorts = append(st.routePorts, p)
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
	}
	st.hub = make([]*server.Server, len(hubs))
	errs := make(chan error, len(hubs))
	for i, name := range hubs {
		sec, err := natspki.Hub(st.dir, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := natsnode.NodeConfig{
			ServerConfig: natsnode.ServerConfig{StoreDir: t.TempDir(), Port: -1, JetStreamDomain: natsnode.HubDomain, ServerName: name},
			ClusterName:  "iam-hub", ClusterListen: strings.TrimPrefix(routes[i], "nats-route://"), Routes: routes,
			LeafListen: "127.0.0.1:-1",
			Security:   sec,
		}
		go func() {
			var err error
			st.hub[i], err = natsnode.RunNode(cfg)
			errs <- err
		}()
	}
	t.Cleanup(func() {
		for _, s := range st.regions {
			s.Shutdown()
			s.WaitForShutdown()
		}
		for _, s := range st.hub {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	for range hubs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range secureRegions {
		st.regions[r] = st.startRegion(t, r, r, "region-"+r)
	}
	return st
}

// startRegion starts a leaf node with region's credentials in domain.
func (st *secureTopology) startRegion(t *testing.T, region, domain, name string) *server.Server {
	t.Helper()
	sec, err := natspki.Region(st.dir, region)
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsnode.RunNode(natsnode.NodeConfig{
		ServerConfig: natsnode.ServerConfig{StoreDir: t.TempDir(), JetStreamDomain: domain, ServerName: name},
		LeafRemotes:  st.leafURLs(),
		Security:     sec,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := natsnode.WaitLeaf(ctx, s, 1); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustConnect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := natsnode.Connect(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func heartbeat(name string) []iam.Commit {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []iam.Commit{{Actor: name, IdempotencyKey: name, At: at, Events: []iam.Event{iam.Heartbeat{At: at}}}}
}

// legitRegion is a region's process: it follows the hub's stream and
// relays requests, as iamd does.
type legitRegion struct {
	name string
	f    *eventlog.Follower
	bus  *bus.Bus
	last uint64
}

// waitSeq reads the follower until it has seq.
func (r *legitRegion) waitSeq(t *testing.T, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for r.last < seq {
		es, err := r.f.Next(ctx, 0)
		if err != nil {
			t.Fatalf("%s: follow to %d (at %d): %v", r.name, seq, r.last, err)
		}
		r.last = es[len(es)-1].Seq
	}
}

func (r *legitRegion) request(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := r.bus.Request(ctx, bus.RPCSubject, []byte(msg))
	if err != nil {
		t.Fatalf("%s: request %q: %v", r.name, msg, err)
	}
	if string(got) != "ok "+msg {
		t.Fatalf("%s: reply %q, want %q", r.name, got, "ok "+msg)
	}
}

// statusSeen records the status subjects the hub received, by payload.
type statusSeen struct {
	mu   sync.Mutex
	seen map[string]string // payload -> subject
}

func (s *statusSeen) add(subject string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[string(data)] = subject
}

func (s *statusSeen) get(payload string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.seen[payload]
	return sub, ok
}

// TestSecure_Intruders runs the secured topology (TLS on routes, leaf and
// client ports, nkey users, per-region leaf permissions) and checks that
// nobody without credentials gets in, that a stolen region credential can
// only do what the region may, and that the regions keep reading the log
// and relaying requests throughout.
func TestSecure_Intruders(t *testing.T) {
	st := startSecure(t)
	ctx := context.Background()

	hnc := mustConnect(t, st.hub[0])
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := eventlog.OpenRetry(octx, hnc, eventlog.Config{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := l.JetStream().CreateKeyValue(octx, jetstream.KeyValueConfig{Bucket: "IAM_KEYS", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(octx, "signing", "secret"); err != nil {
		t.Fatal(err)
	}
	hb := bus.New(hnc)
	t.Cleanup(hb.Close)
	stop, err := hb.Serve(bus.RPCSubject, bus.RPCQueue, func(_ context.Context, data []byte) []byte { return append([]byte("ok "), data...) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	status := &statusSeen{seen: map[string]string{}}
	if err := hb.Subscribe(bus.StatusSubjectPrefix+".*", status.add); err != nil {
		t.Fatal(err)
	}
	appendOne := func(name string) uint64 {
		t.Helper()
		seq, err := l.Append(ctx, eventlog.AppendRequest{Subject: "iam.evt.acme.a", Commits: heartbeat(name)})
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		return seq
	}
	seq := appendOne("first")

	regions := map[string]*legitRegion{}
	for _, name := range secureRegions {
		rnc := mustConnect(t, st.regions[name])
		rl, err := eventlog.Attach(octx, rnc, eventlog.Config{Domain: natsnode.HubDomain})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := rl.Follow(octx, 1)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(f.Stop)
		r := &legitRegion{name: name, f: f, bus: bus.New(rnc)}
		t.Cleanup(r.bus.Close)
		regions[name] = r
	}
	legit := func(t *testing.T, round string) {
		t.Helper()
		seq := appendOne(round)
		for _, name := range secureRegions {
			r := regions[name]
			r.waitSeq(t, seq)
			r.request(t, name+" "+round)
			payload := name + " status " + round
			if err := r.bus.Publish(bus.StatusSubjectPrefix+"."+name, []byte(payload)); err != nil {
				t.Fatal(err)
			}
			eventlogtest.Eventually(t, 10*time.Second, payload+" on the hub", func() bool {
				_, ok := status.get(payload)
				return ok
			})
		}
	}
	// The hub's responders reach a region as interest across the cluster
	// and the leaf link, after Serve returns: a request before that finds
	// no responders (CI saw it once). Wait for it here, once, so that
	// every later round is strict.
	for _, name := range secureRegions {
		eventlogtest.Eventually(t, 10*time.Second, "the hub's responders seen from "+name, func() bool {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := regions[name].bus.Request(rctx, bus.RPCSubject, []byte("probe"))
			return err == nil
		})
	}
	legit(t, "before")
	_ = seq

	t.Run("NoListenerInRegions", func(t *testing.T) {
		for name, s := range st.regions {
			if a := s.Addr(); a != nil {
				t.Errorf("%s listens for clients on %s, want no listener", name, a)
			}
		}
	})

	t.Run("NoTLSOrNoCredentials", func(t *testing.T) {
		region := filepath.Join(st.dir, "region", "eu-west")
		stolen := []nats.Option{
			nats.ClientCert(filepath.Join(region, "leaf.pem"), filepath.Join(region, "leaf.key")),
			nats.RootCAs(filepath.Join(st.dir, "leaf-ca.pem"), filepath.Join(st.dir, "client-ca.pem"), filepath.Join(st.dir, "route-ca.pem")),
		}
		seed, err := nats.NkeyOptionFromSeed(filepath.Join(region, "leaf.seed"))
		if err != nil {
			t.Fatal(err)
		}
		attempts := []struct {
			name string
			opts []nats.Option
		}{
			{"plaintext", nil},
			{"plaintext with route user", []nats.Option{nats.UserInfo("route", "guess")}},
			{"TLS without certificate", []nats.Option{nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})}},
			{"region certificate without nkey", stolen},
			{"region certificate and nkey", append(append([]nats.Option{}, stolen...), seed)},
		}
		for i, s := range st.hub {
			ports := map[string]string{
				"client": s.ClientURL(),
				"route":  "nats://127.0.0.1:" + strconv.Itoa(st.routePorts[i]),
				"leaf":   strings.Replace(natsnode.LeafURL(s), "nats-leaf://", "nats://", 1),
			}
			for port, u := range ports {
				for _, a := range attempts {
					opts := append([]nats.Option{nats.Timeout(3 * time.Second), nats.NoReconnect()}, a.opts...)
					nc, err := nats.Connect(u, opts...)
					if err == nil {
						nc.Close()
						t.Errorf("%s %s port (%s), %s: connected, want refused", s.Name(), port, u, a.name)
					}
				}
			}
		}
	})

	t.Run("StolenRegionCredential", func(t *testing.T) {
		// A thief runs a real nats-server with eu-west's seed and
		// certificate, as eu-west, and uses it like eu-west's processes.
		rogue := st.startRegion(t, "eu-west", "eu-west", "rogue")
		tnc := mustConnect(t, rogue)
		tjs, err := jetstream.NewWithDomain(tnc, natsnode.HubDomain)
		if err != nil {
			t.Fatal(err)
		}
		hubStream, err := l.JetStream().Stream(ctx, eventlog.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		before, err := hubStream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		refused := func(what string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s: succeeded, want refused", what)
			}
		}
		short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }

		// The thief may read the log like eu-west does, once the hub's
		// interest in its JetStream API has crossed the new leaf link
		// (until then a request finds no responders).
		var ts jetstream.Stream
		eventlogtest.Eventually(t, 10*time.Second, "stream info with eu-west's credential", func() bool {
			ts, err = tjs.Stream(ctx, eventlog.DefaultStream)
			return err == nil
		})

		rpc, err := tnc.SubscribeSync("iam.rpc.>")
		if err != nil {
			t.Fatal(err)
		}
		thiefStatus, err := tnc.SubscribeSync("iam.status.*")
		if err != nil {
			t.Fatal(err)
		}

		if err := tnc.Publish("iam.evt.acme.a", []byte("forged")); err != nil {
			t.Fatal(err)
		}
		c, cancel := short()
		_, err = tjs.Publish(c, "iam.evt.acme.a", []byte("forged"))
		cancel()
		refused("jetstream publish to iam.evt", err)
		c, cancel = short()
		refused("delete stream IAM", tjs.DeleteStream(c, eventlog.DefaultStream))
		cancel()
		c, cancel = short()
		refused("purge stream IAM", ts.Purge(c))
		cancel()
		c, cancel = short()
		_, err = tjs.KeyValue(c, "IAM_KEYS")
		cancel()
		refused("open KV IAM_KEYS", err)
		_, err = tnc.Request("$JS."+natsnode.HubDomain+".API.DIRECT.GET.KV_IAM_KEYS.$KV.IAM_KEYS.signing", nil, time.Second)
		refused("direct get from KV IAM_KEYS", err)
		if err := tnc.Publish(bus.StatusSubjectPrefix+".us-east", []byte("forged us-east status")); err != nil {
			t.Fatal(err)
		}

		// us-east relays requests while the thief listens on iam.rpc.>.
		for i := range 10 {
			regions["us-east"].request(t, fmt.Sprintf("during theft %d", i))
		}
		// Barriers: a status the thief may send, after its forged one, on
		// the same link; a hub status after the requests, to the thief.
		if err := tnc.Publish(bus.StatusSubjectPrefix+".eu-west", []byte("thief barrier")); err != nil {
			t.Fatal(err)
		}
		eventlogtest.Eventually(t, 10*time.Second, "the thief's own-region status on the hub", func() bool {
			_, ok := status.get("thief barrier")
			return ok
		})
		if sub, ok := status.get("forged us-east status"); ok {
			t.Errorf("hub received the forged us-east status on %s", sub)
		}
		if err := hb.Publish(bus.StatusSubjectPrefix+".hub", []byte("hub barrier")); err != nil {
			t.Fatal(err)
		}
		m, err := thiefStatus.NextMsg(10 * time.Second)
		for err == nil && string(m.Data) != "hub barrier" {
			m, err = thiefStatus.NextMsg(10 * time.Second)
		}
		if err != nil {
			t.Fatalf("the hub's status never reached the thief: %v", err)
		}
		if n, _, _ := rpc.Pending(); n != 0 {
			m, _ := rpc.NextMsg(0)
			t.Errorf("the thief received %d requests on iam.rpc.> (first %q), want none", n, m.Data)
		}

		// After a round trip over the thief's link, the stream and KV are
		// as they were.
		if _, err := ts.Info(ctx); err != nil {
			t.Fatalf("stream info with eu-west's credential: %v", err)
		}
		after, err := hubStream.Info(ctx)
		if err != nil {
			t.Fatalf("stream IAM after the theft: %v", err)
		}
		if after.State.Msgs != before.State.Msgs || after.State.LastSeq != before.State.LastSeq {
			t.Errorf("stream IAM changed: got %d msgs up to %d, want %d up to %d",
				after.State.Msgs, after.State.LastSeq, before.State.Msgs, before.State.LastSeq)
		}
		e, err := kv.Get(ctx, "signing")
		if err != nil || string(e.Value()) != "secret" {
			t.Errorf("KV IAM_KEYS signing: got %v, %v, want secret", e, err)
		}
	})

	t.Run("StolenRegionCredentialHubEnforces", func(t *testing.T) {
		// The thief's patched server ignores the permissions the hub
		// sends; the hub refuses every forbidden message and closes the
		// link.
		region := filepath.Join(st.dir, "region", "eu-west")
		cert, err := tls.LoadX509KeyPair(filepath.Join(region, "leaf.pem"), filepath.Join(region, "leaf.key"))
		if err != nil {
			t.Fatal(err)
		}
		caPEM, err := os.ReadFile(filepath.Join(st.dir, "leaf-ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: natsnode.DefaultHubLeafTLSName}
		seed, err := os.ReadFile(filepath.Join(region, "leaf.seed"))
		if err != nil {
			t.Fatal(err)
		}
		seed = []byte(strings.TrimSpace(string(seed)))
		addr := strings.TrimPrefix(natsnode.LeafURL(st.hub[0]), "nats-leaf://")
		dial := func(t *testing.T) *rawLeaf {
			t.Helper()
			rl, err := dialRawLeaf(addr, tlsCfg, seed, "eu-west")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rl.Close)
			if rl.waitFor("PONG", 5*time.Second) == "" {
				t.Fatalf("the stolen credential did not connect: %q", rl.all)
			}
			return rl
		}
		t.Run("wrong key or certificate", func(t *testing.T) {
			random, err := nkeys.CreateUser()
			if err != nil {
				t.Fatal(err)
			}
			randomSeed, _ := random.Seed()
			rogueDir := t.TempDir()
			if err := natspki.Generate(rogueDir, natspki.Options{Regions: []string{"eu-west"}}); err != nil {
				t.Fatal(err)
			}
			rogueRegion := filepath.Join(rogueDir, "region", "eu-west")
			rogueCert, err := tls.LoadX509KeyPair(filepath.Join(rogueRegion, "leaf.pem"), filepath.Join(rogueRegion, "leaf.key"))
			if err != nil {
				t.Fatal(err)
			}
			rogueTLS := tlsCfg.Clone()
			rogueTLS.Certificates = []tls.Certificate{rogueCert}
			noCert := tlsCfg.Clone()
			noCert.Certificates = nil
			cases := []struct {
				name string
				tls  *tls.Config
				seed []byte
			}{
				{"region cert, random nkey", tlsCfg, randomSeed},
				{"rogue-CA cert, region nkey", rogueTLS, seed},
				{"no cert, region nkey", noCert, seed},
			}
			for _, c := range cases {
				rl, err := dialRawLeaf(addr, c.tls, c.seed, "eu-west")
				if err != nil {
					continue // refused at the handshake
				}
				l := rl.waitFor("PONG", 5*time.Second)
				rl.Close()
				if l != "" {
					t.Errorf("%s: connected, want refused", c.name)
				}
			}
		})
		js := "$JS." + natsnode.HubDomain + ".API."
		violations := []struct{ name, proto string }{
			{"publish iam.evt", "LMSG iam.evt.acme.a 5\r\nevil!\r\n"},
			{"publish iam.evt with reply", "LMSG iam.evt.acme.a _INBOX_eu-west.a 5\r\nevil!\r\n"},
			{"delete stream", "LMSG " + js + "STREAM.DELETE.IAM _INBOX_eu-west.b 0\r\n\r\n"},
			{"purge stream", "LMSG " + js + "STREAM.PURGE.IAM _INBOX_eu-west.c 0\r\n\r\n"},
			{"delete stream, local API", "LMSG $JS.API.STREAM.DELETE.IAM _INBOX_eu-west.d 0\r\n\r\n"},
			{"KV info", "LMSG " + js + "STREAM.INFO.KV_IAM_KEYS _INBOX_eu-west.e 0\r\n\r\n"},
			{"KV direct get", "LMSG " + js + "DIRECT.GET.KV_IAM_KEYS.$KV.IAM_KEYS.signing _INBOX_eu-west.f 0\r\n\r\n"},
			{"KV write", "LMSG $KV.IAM_KEYS.signing 4\r\nevil\r\n"},
			{"delete consumer", "LMSG " + js + "CONSUMER.DELETE.IAM.x _INBOX_eu-west.g 0\r\n\r\n"},
			{"other region's status", "LMSG iam.status.us-east 4\r\nevil\r\n"},
			{"other rpc subject", "LMSG iam.rpc.admin _INBOX_eu-west.h 4\r\nevil\r\n"},
			{"serve iam.rpc.http", "LS+ iam.rpc.http\r\n"},
			{"other region's inbox", "LS+ _INBOX_us-east.abc\r\n"},
		}
		for _, v := range violations {
			t.Run(v.name, func(t *testing.T) {
				rl := dial(t)
				if err := rl.send(v.proto + "PING\r\n"); err != nil {
					t.Fatal(err)
				}
				if l := rl.waitFor("-ERR", 5*time.Second); !strings.Contains(l, "Permissions Violation") {
					t.Fatalf("got %q, want a permissions violation", l)
				}
			})
		}
		t.Run("wildcard subscriptions receive nothing", func(t *testing.T) {
			rl := dial(t)
			if err := rl.send("LS+ iam.rpc.>\r\nLS+ iam.>\r\nLS+ _INBOX_us-east.>\r\nLS+ >\r\nLS+ iam.rpc.* iam-hub 1\r\nPING\r\n"); err != nil {
				t.Fatal(err)
			}
			if rl.waitFor("PONG", 5*time.Second) == "" {
				t.Fatalf("link closed: %q", rl.all)
			}
			for i := range 10 {
				regions["us-east"].request(t, fmt.Sprintf("during raw theft %d", i))
			}
			if err := hb.Publish(bus.StatusSubjectPrefix+".hub", []byte("raw barrier")); err != nil {
				t.Fatal(err)
			}
			if rl.waitFor("raw barrier", 10*time.Second) == "" {
				t.Fatalf("the hub's status never reached the raw leaf: %q", rl.all)
			}
			for _, forbidden := range []string{"iam.rpc", "_INBOX_us-east", "iam.evt"} {
				if rl.seen("MSG " + forbidden) {
					t.Errorf("the raw leaf received a message on %s", forbidden)
				}
			}
		})
	})

	t.Run("LegitRegionsStillWork", func(t *testing.T) { legit(t, "after") })
}
