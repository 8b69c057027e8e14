package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/sim/faultproxy"
)

// simIssuer is the one issuer every process of a simulated topology signs
// and verifies tokens with.
const simIssuer = "http://iam.sim"

// cluster is a running topology: hub nodes and regions, each an iamd
// process (daemon.Main) in this process, each region's leaf link to every
// hub node through its own fault proxy.
type cluster struct {
	realm        string
	clientID     string
	clientSecret string
	tokenURL     string
	hubs         []*hubNode
	regions      []*regionNode
	log          *slog.Logger
	notes        []string // what went wrong on the way up, for the report

	mu sync.Mutex // guards hubs[i].dead
}

type hubNode struct {
	Name    string
	URL     string // HTTP base
	NATSURL string // client URL
	main    *daemon.Main
	dead    bool
}

// regionNode is one region: its HTTP base and its link to the hub.
type regionNode struct {
	Name string
	URL  string
	Link faultproxy.Link
	main *daemon.Main
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startCluster starts s.Hub.Nodes hub processes under dir (the first
// bootstrapping the admin), then one region process per s.Regions.
func startCluster(ctx context.Context, s Scenario, dir string, logger *slog.Logger) (_ *cluster, err error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &cluster{log: logger}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	n := s.Hub.Nodes
	secrets := filepath.Join(dir, "hub-secrets")
	if n > 1 {
		// Every hub node must sign with the same keys. They are made by
		// the daemon's own code: a throwaway all-in-one run on the secrets
		// directory (see docs/simulation.md for the export this wants).
		if err := prepareSecrets(ctx, secrets); err != nil {
			return nil, fmt.Errorf("hub secrets: %w", err)
		}
	}
	ports := func(k int) ([]int, error) {
		var out []int
		for range k {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	}
	natsPorts, err := ports(n)
	if err != nil {
		return nil, err
	}
	leafPorts, err := ports(n)
	if err != nil {
		return nil, err
	}
	var routes []string
	var routePorts []int
	if n > 1 {
		if routePorts, err = ports(n); err != nil {
			return nil, err
		}
		for _, p := range routePorts {
			routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
		}
	}
	for i := range n {
		m := daemon.NewMain()
		cf := &m.Config
		name := fmt.Sprintf("hub-%d", i)
		cf.Mode, cf.HTTPAddr, cf.DataDir = daemon.ModeHub, "127.0.0.1:0", filepath.Join(dir, name)
		cf.Regions, cf.Issuer, cf.SyncAlways = []string{name}, simIssuer, s.Hub.Fsync
		cf.HashParams, cf.Logger, cf.Stderr = auth.LowCostHashParams(), logger.With("proc", name), io.Discard
		cf.NATSName, cf.Bootstrap = name, i == 0
		cf.NATSListen = "127.0.0.1:" + strconv.Itoa(natsPorts[i])
		cf.LeafListen = "127.0.0.1:" + strconv.Itoa(leafPorts[i])
		cf.HeartbeatInterval, cf.MaxLag = s.Hub.Heartbeat.D(), 0
		if n > 1 {
			cf.SecretsDir = secrets
			cf.ClusterListen, cf.Routes = "127.0.0.1:"+strconv.Itoa(routePorts[i]), routes
		}
		c.hubs = append(c.hubs, &hubNode{Name: name, NATSURL: "nats://" + cf.NATSListen, main: m})
	}
	// A clustered hub creates its stream once a quorum is up: start the
	// nodes together.
	errs := make(chan error, n)
	for _, h := range c.hubs {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			errs <- h.main.Run(rctx)
		}()
	}
	var runErr error
	for range n {
		runErr = errors.Join(runErr, <-errs)
	}
	if runErr != nil {
		return nil, fmt.Errorf("start hub: %w", runErr)
	}
	for _, h := range c.hubs {
		h.URL = "http://" + h.main.Addr
	}
	b := c.hubs[0].main.Bootstrap
	if b == nil {
		return nil, errors.New("start hub: no bootstrap admin")
	}
	c.realm, c.clientID, c.clientSecret = b.Realm, b.ClientID, b.ClientSecret
	c.tokenURL = c.hubs[0].URL + "/oauth2/token"
	if n > 1 {
		// The bootstrapping node must lead the stream: the process beside
		// the leader serves the regions' writes, and a writer learns what
		// another process appended only when its own append conflicts.
		if err := c.moveLeader(ctx, c.hubs[0].Name); err != nil {
			return nil, err
		}
	}
	var leafURLs []string
	for _, p := range leafPorts {
		leafURLs = append(leafURLs, "nats-leaf://127.0.0.1:"+strconv.Itoa(p))
	}
	for _, name := range s.Regions {
		link, err := faultproxy.NewLink(name, leafURLs)
		if err != nil {
			return nil, err
		}
		rn := &regionNode{Name: name, Link: link}
		c.regions = append(c.regions, rn)
		// A region attaches to the hub's stream across its link; right
		// after a leader change the hub may not answer yet: start again,
		// on a fresh data directory, with backoff.
		attempt := 0
		b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond),
			backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(time.Minute))
		err = backoff.RetryNotify(func() error {
			attempt++
			m := daemon.NewMain()
			cf := &m.Config
			cf.Mode, cf.Region, cf.HubLeaf = daemon.ModeRegion, name, link.URLs("nats-leaf")
			cf.LogKeys = c.hubs[0].main.LogPublicKeysFile()
			cf.HTTPAddr, cf.DataDir, cf.Issuer = "127.0.0.1:0", filepath.Join(dir, name, strconv.Itoa(attempt)), simIssuer
			cf.Logger, cf.Stderr, cf.MaxLag = logger.With("proc", name), io.Discard, 0
			cf.HeartbeatInterval, cf.HashParams = s.Hub.Heartbeat.D(), auth.LowCostHashParams()
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			if err := m.Run(rctx); err != nil {
				_ = m.Close()
				if ctx.Err() != nil {
					return backoff.Permanent(err)
				}
				return err
			}
			rn.main = m
			rn.URL = "http://" + m.Addr
			return nil
		}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
			c.notes = append(c.notes, fmt.Sprintf("start region %s, attempt %d: %v (again in %s)", name, attempt, err, d.Round(time.Millisecond)))
		})
		if err != nil {
			return nil, fmt.Errorf("start region %s: %w", name, err)
		}
	}
	return c, nil
}

// prepareSecrets makes the hub's signing keys and idempotency secret in
// dir by running the all-in-one there once.
func prepareSecrets(ctx context.Context, dir string) error {
	m := daemon.NewMain()
	cf := &m.Config
	cf.HTTPAddr, cf.DataDir, cf.Bootstrap, cf.SyncAlways = "127.0.0.1:0", dir, false, false
	cf.Regions, cf.HeartbeatInterval = []string{"secrets"}, 0
	cf.Logger, cf.Stderr = slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := m.Run(rctx)
	return errors.Join(err, m.Close())
}

// leader names the hub node leading the stream, asking a live node.
func (c *cluster) leader(ctx context.Context) (string, error) {
	c.mu.Lock()
	var urls []string
	for _, h := range c.hubs {
		if !h.dead {
			urls = append(urls, h.NATSURL)
		}
	}
	c.mu.Unlock()
	var lastErr error
	for _, u := range urls {
		nc, err := nats.Connect(u, nats.Name("iamsim"))
		if err != nil {
			lastErr = err
			continue
		}
		js, err := jetstream.New(nc)
		if err == nil {
			var st jetstream.Stream
			if st, err = js.Stream(ctx, eventlog.DefaultStream); err == nil {
				info := st.CachedInfo()
				if info.Cluster != nil && info.Cluster.Leader != "" {
					nc.Close()
					return info.Cluster.Leader, nil
				}
				err = errors.New("no stream leader")
			}
		}
		nc.Close()
		lastErr = err
	}
	return "", fmt.Errorf("stream leader: %w", lastErr)
}

// moveLeader makes node lead the stream (a JetStream leader step-down
// with that node preferred) and waits until it does.
func (c *cluster) moveLeader(ctx context.Context, node string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := poll(ctx, 100*time.Millisecond, nil, func() error {
		lead, err := c.leader(ctx)
		if err != nil {
			return err
		}
		if lead == node {
			return nil
		}
		nc, err := nats.Connect(c.hubs[0].NATSURL, nats.Name("iamsim"))
		if err != nil {
			return err
		}
		defer nc.Close()
		req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": node}})
		_, _ = nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+eventlog.DefaultStream, req)
		return fmt.Errorf("%s leads, not %s", lead, node)
	})
	if err != nil {
		return fmt.Errorf("move the stream leader to %s: %w", node, err)
	}
	return nil
}

// killHub shuts a hub node down for good: node is "leader" (or empty) for
// the stream's leader, or an index. It returns the node's name.
func (c *cluster) killHub(node string) (string, error) {
	var victim *hubNode
	if node == "" || node == "leader" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		name, err := c.leader(ctx)
		cancel()
		if err != nil {
			return "", err
		}
		for _, h := range c.hubs {
			if h.Name == name {
				victim = h
			}
		}
	} else {
		i, err := strconv.Atoi(node)
		if err != nil || i < 0 || i >= len(c.hubs) {
			return "", fmt.Errorf("no hub node %q", node)
		}
		victim = c.hubs[i]
	}
	if victim == nil {
		return "", fmt.Errorf("hub node %q not found", node)
	}
	c.mu.Lock()
	if victim.dead {
		c.mu.Unlock()
		return "", fmt.Errorf("hub node %s is already down", victim.Name)
	}
	victim.dead = true
	c.mu.Unlock()
	_ = victim.main.Close()
	return victim.Name, nil
}

// close stops the regions, then the hub nodes, then the proxies.
func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, rn := range c.regions {
		if rn.main != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = rn.main.Close()
			}()
		}
	}
	wg.Wait()
	for _, h := range c.hubs {
		if h.main == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.main.Close()
		}()
	}
	wg.Wait()
	for _, rn := range c.regions {
		if rn.Link != nil {
			rn.Link.Close()
		}
	}
}
