package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/replica"
)

// Modes of iamd.
const (
	ModeAll    = "all" // all-in-one (default)
	ModeHub    = "hub"
	ModeRegion = "region"
)

// Config is iamd's configuration.
type Config struct {
	// Mode is ModeAll, ModeHub or ModeRegion (the first argument).
	Mode     string
	HTTPAddr string
	DataDir  string
	Regions  []string
	// Issuer is the token issuer and discovery's base URL. Empty: the
	// listener's URL (http://127.0.0.1:PORT, or https:// with TLS), set
	// at start; never taken from a request's Host.
	Issuer     string
	SyncAlways bool

	// TLSCert and TLSKey (PEM files) serve HTTPS, TLS 1.2 and up, with
	// Strict-Transport-Security; Main.ReloadTLS (SIGHUP) reads them again.
	TLSCert, TLSKey string
	// InsecureHTTP allows plaintext HTTP on a non-loopback address, for a
	// TLS-terminating proxy in front. Loopback addresses need no flag.
	InsecureHTTP bool
	// InsecureNATS allows plaintext, unauthenticated NATS links (listeners,
	// routes, the hub's leaf URLs) off loopback in hub and region mode,
	// where --nats-tls-dir is missing: only on a network nobody else
	// reaches. Loopback needs no flag.
	InsecureNATS bool
	// MaxConns caps the HTTP connections served at once. Default
	// DefaultMaxConns.
	MaxConns int
	// AddrFile, when set, receives the process's listeners as JSON
	// (Listeners) once it is ready: how a script learns the ports of
	// --http 127.0.0.1:0 and --nats-listen 127.0.0.1:-1.
	AddrFile string

	// SecretsDir holds the token signing keys and the idempotency secret
	// (default: DataDir). Every hub node must have the same ones.
	SecretsDir string
	// Bootstrap creates the first realm and admin on an empty log. Start
	// one hub node with it, not all of them. Default true.
	Bootstrap bool
	// HeartbeatInterval: the hub (and the all-in-one) appends a heartbeat
	// when the log has been idle this long. 0 disables. Default 1s.
	HeartbeatInterval time.Duration
	// MaxLag marks a region not ready when it lags more. 0 disables.
	MaxLag time.Duration

	// Hub and region: the embedded NATS server.
	NATSName   string // server name (default: iamd, the hub node or region name)
	NATSListen string // client listener host:port (default 127.0.0.1, random port)
	// NATSTLSDir, when set, runs the embedded server in secure mode with
	// the certificates and nkeys under it (natspki's layout: a hub node
	// reads hub/<NATSName>, a region region/<Region>). Empty: plaintext,
	// for local runs only. See docs/deploy/nats-security.md.
	NATSTLSDir string

	// Hub.
	ClusterName    string   // JetStream cluster name (default "iam-hub")
	ClusterListen  string   // route listener host:port; empty: a single hub node
	Routes         []string // nats-route://host:port of every cluster node
	LeafListen     string   // leaf listener host:port for the regions
	StreamReplicas int      // replicas of the stream (default: 3 when clustered, else 1)

	// Region.
	Region        string        // the region this process serves
	HubLeaf       []string      // the hub's leaf URLs, nats-leaf://host:port
	LeafReconnect time.Duration // redial interval of the hub link (default 250ms)
	// LogKeys is the file of the log's trusted public keys (the hub's
	// LogPublicKeysFile, distributed by the operator): a region applies
	// only entries and snapshots signed by one of them. Required in region
	// mode; the hub and the all-in-one use their own keys.
	LogKeys string
	// ProjectorMaxBackoff caps the projector's retry interval, so that a
	// region is current soon after its hub link heals. Default 500ms in a
	// region, 2s otherwise.
	ProjectorMaxBackoff time.Duration
	// HubWait bounds how long a region waits at start for the hub's stream.
	HubWait time.Duration
	// JWKSMaxAge bounds how long a region trusts its copy of the hub's
	// signing keys before fetching them again (api.Region.JWKSMaxAge).
	JWKSMaxAge time.Duration
	// JoinFromSnapshot: a region whose read model is empty loads the
	// hub's newest snapshot and follows the log from there (join.go).
	// Default true.
	JoinFromSnapshot bool
	// SnapshotEvery and SnapshotInterval: the hub publishes a snapshot
	// once this many entries were applied since the last, or this long
	// after it. Both 0: never (POST /v1/replicas/snapshot still does).
	// Defaults 100000 and 1h.
	SnapshotEvery    uint64
	SnapshotInterval time.Duration
	// CheckpointEvery is the spacing, in log entries, of the checkpoints
	// each replica keeps for at_exact_snapshot reads (docs/history.md).
	// Default replica.DefaultCheckpointEvery.
	CheckpointEvery uint64
	// CheckpointMemory bounds, in bytes, what the checkpoints' indexes
	// take beyond the live state (replica.Config.CheckpointMemory);
	// default replica.DefaultCheckpointMemory, negative for none.
	CheckpointMemory int64
	// PersistAtClose bounds the time the replicas, closed at once, spend
	// at shutdown writing the checkpoint files their persisters have not
	// reached (replica.Config.PersistAtClose); default
	// replica.DefaultPersistAtClose, negative for none.
	PersistAtClose time.Duration
	// BulkCatchUp is how far behind the log's head, in entries, an empty
	// read model's first batch must end for it to catch up as a bulk load
	// (replica.Config.BulkCatchUp); default replica.DefaultBulkCatchUp,
	// negative for never.
	BulkCatchUp int64

	// HashParams for new secrets; tests use cheap ones.
	HashParams auth.HashParams
	// MaxConcurrentHashes and HashWait bound the argon2id work run at once
	// (api.Config). Defaults 2×GOMAXPROCS and 1s.
	MaxConcurrentHashes int
	HashWait            time.Duration

	Logger *slog.Logger
	// Stderr receives the one-time bootstrap message and --help. Default
	// os.Stderr.
	Stderr io.Writer
}

// DefaultConfig is the all-in-one on embedded defaults.
func DefaultConfig() Config {
	return Config{
		Mode:              ModeAll,
		HTTPAddr:          "127.0.0.1:8080",
		DataDir:           "data",
		Regions:           []string{"eu-west", "us-east", "ap-south"},
		SyncAlways:        true,
		HashParams:        auth.DefaultHashParams(),
		Bootstrap:         true,
		HeartbeatInterval: eventlog.DefaultHeartbeatInterval,
		MaxLag:            30 * time.Second,
		NATSListen:        "127.0.0.1:-1",
		ClusterName:       "iam-hub",
		LeafReconnect:     natsnode.DefaultLeafReconnect,
		HubWait:           time.Minute,
		JWKSMaxAge:        auth.DefaultJWKSMaxAge,
		JoinFromSnapshot:  true,
		SnapshotEvery:     replica.DefaultSnapshotEvery,
		SnapshotInterval:  replica.DefaultSnapshotInterval,
		MaxConns:          DefaultMaxConns,
		CheckpointEvery:   replica.DefaultCheckpointEvery,
		CheckpointMemory:  replica.DefaultCheckpointMemory,
		PersistAtClose:    replica.DefaultPersistAtClose,
		BulkCatchUp:       replica.DefaultBulkCatchUp,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("--data must not be empty")
	}
	if err := c.validateHTTP(); err != nil {
		return err
	}
	if err := c.validateNATS(); err != nil {
		return err
	}
	switch c.Mode {
	case ModeAll, ModeHub:
		if c.Mode == ModeAll && c.NATSTLSDir != "" {
			return errors.New("--nats-tls-dir is for hub and region mode: the all-in-one's server has no links to secure")
		}
	case ModeRegion:
		if err := iam.ValidID("region", c.Region); err != nil {
			return fmt.Errorf("--region %q is not a region name", c.Region)
		}
		if len(c.HubLeaf) == 0 {
			return errors.New("--hub-leaf is required in region mode")
		}
		if c.LogKeys == "" {
			return errors.New("--log-keys is required in region mode: a region applies only entries signed by a key it trusts")
		}
		if c.Issuer == "" {
			return errors.New("--issuer is required in region mode: tokens are signed by the hub and must carry the same issuer in every region")
		}
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("--http %q: %w", c.HTTPAddr, err)
		}
		return nil
	default:
		return fmt.Errorf("mode %q is not one of all, hub, region", c.Mode)
	}
	if c.Mode == ModeHub {
		if c.Issuer == "" {
			return errors.New("--issuer is required in hub mode: regions verify the hub's tokens against it")
		}
		if c.LeafListen == "" {
			return errors.New("--leaf-listen is required in hub mode")
		}
		if c.ClusterListen != "" && len(c.Routes) == 0 {
			return errors.New("--routes must list the cluster's nodes when --cluster is set")
		}
	}
	if len(c.Regions) == 0 {
		return errors.New("--regions needs at least one region")
	}
	seen := map[string]bool{}
	for _, r := range c.Regions {
		if err := iam.ValidID("regions", r); err != nil || seen[r] {
			return fmt.Errorf("--regions: %q is not a region name, or repeated", r)
		}
		seen[r] = true
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http %q: %w", c.HTTPAddr, err)
	}
	return nil
}

// validateHTTP checks the HTTP listener's flags: plaintext HTTP is for
// loopback, or behind a TLS-terminating proxy (--insecure-http).
func (c Config) validateHTTP() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("--http %q: %w", c.HTTPAddr, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.TLSCert == "" && !c.InsecureHTTP && !loopback(c.HTTPAddr) {
		return fmt.Errorf("--http %q is not a loopback address: serve HTTPS with --tls-cert and --tls-key, "+
			"or pass --insecure-http when a TLS-terminating proxy is in front", c.HTTPAddr)
	}
	if c.MaxConns < 0 {
		return errors.New("--max-conns must not be negative")
	}
	if c.MaxConcurrentHashes < 0 {
		return errors.New("--max-concurrent-hashes must not be negative")
	}
	return nil
}

// validateNATS refuses plaintext NATS off loopback in hub and region mode:
// whoever reaches an open NATS port can write to the log (issue 9), so a
// link between hosts is secured (--nats-tls-dir) unless --insecure-nats
// says the network is trusted.
func (c Config) validateNATS() error {
	if c.Mode == ModeAll || c.NATSTLSDir != "" || c.InsecureNATS {
		return nil
	}
	check := func(flag, addr string) error {
		if addr == "" || loopback(addr) {
			return nil
		}
		return fmt.Errorf("--%s %q is not a loopback address: secure NATS with --nats-tls-dir "+
			"(docs/deploy/nats-security.md), or pass --insecure-nats on a network nobody else reaches", flag, addr)
	}
	for flag, addr := range map[string]string{"nats-listen": c.NATSListen, "cluster": c.ClusterListen, "leaf-listen": c.LeafListen} {
		if err := check(flag, addr); err != nil {
			return err
		}
	}
	for flag, urls := range map[string][]string{"routes": c.Routes, "hub-leaf": c.HubLeaf} {
		for _, raw := range urls {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" {
				return fmt.Errorf("--%s %q is not a URL", flag, raw)
			}
			if err := check(flag, u.Host); err != nil {
				return err
			}
		}
	}
	return nil
}

// usage is what --help prints before the flags of the mode asked about:
// every mode and what it is for, so that running the all-in-one is not the
// only way a newcomer learns of.
const usage = `iamd runs iam, an event-sourced identity and access management service.

Usage:
  iamd [flags]            all-in-one: one process holds the log (embedded NATS
                          JetStream under --data), the writer, a replica per
                          --regions and the HTTP API. One machine: development,
                          tests, a small installation.
  iamd hub [flags]        a hub node: one of the (usually 3) JetStream cluster
                          nodes that hold the log and take every write; serves
                          the API and the leaf links the regions dial.
  iamd region [flags]     a region: a replica near its clients that follows the
                          hub's log over a NATS leaf link, answers checks and
                          reads on its own, even cut off, and relays writes to
                          the hub.
  iamd pki [flags] DIR    writes the certificates, nkeys and hub secrets a
                          secured hub and its regions need before their first
                          start.

Deployment: docs/deploy/README.md. "iamd MODE --help" lists a mode's flags.

Flags of %s:
`

// modeTitle names a mode in --help.
var modeTitle = map[string]string{ModeAll: "the all-in-one (iamd)", ModeHub: "iamd hub", ModeRegion: "iamd region"}

// ParseFlags reads the command line into m.Config: an optional mode
// (hub, region) then flags. "help", -h and --help print the modes and the
// mode's flags to Config.Stderr and return flag.ErrHelp.
func (m *Main) ParseFlags(args []string) error {
	c := &m.Config
	out := c.Stderr
	if out == nil {
		out = os.Stderr
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case ModeHub, ModeRegion, ModeAll:
			c.Mode = args[0]
			args = args[1:]
		case "help":
			args = []string{"--help"}
		default:
			return fmt.Errorf("unknown mode %q: use iamd [hub|region] [flags], or iamd pki DIR; iamd --help says what each is for", args[0])
		}
	}
	fs := flag.NewFlagSet("iamd "+c.Mode, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, usage, modeTitle[c.Mode])
		fs.PrintDefaults()
	}
	if c.Mode == ModeHub {
		c.Regions = []string{"hub"}
	}
	regions := strings.Join(c.Regions, ",")
	var routes, hubLeaf string
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen address (127.0.0.1:0 picks a free port)")
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (log, read models, keys)")
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "token issuer URL (default: the listener's URL; required for hub and region)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) file: serve HTTPS; reloaded on SIGHUP")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key file of --tls-cert")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "allow plaintext HTTP on a non-loopback --http (a TLS-terminating proxy in front)")
	if c.Mode != ModeAll {
		fs.BoolVar(&c.InsecureNATS, "insecure-nats", c.InsecureNATS, "allow plaintext NATS links off loopback without --nats-tls-dir (a network nobody else reaches)")
	}
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "maximum HTTP connections served at once (0: default)")
	fs.IntVar(&c.MaxConcurrentHashes, "max-concurrent-hashes", c.MaxConcurrentHashes, "maximum argon2id hashes and verifications at once; past it they wait up to 1s, then answer 503 (0: 2×GOMAXPROCS)")
	fs.StringVar(&c.AddrFile, "addr-file", c.AddrFile, "write the listeners' URLs and the pid as JSON to this file once ready")
	fs.DurationVar(&c.MaxLag, "max-lag", c.MaxLag, "a region lagging more is not ready (0: no threshold)")
	fs.Uint64Var(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "keep a read-model checkpoint for at_exact_snapshot reads every this many entries (0: default)")
	fs.DurationVar(&c.PersistAtClose, "persist-at-close", c.PersistAtClose, "at shutdown, spend at most this long writing the checkpoint files not yet written, newest first (0: default; negative: none); those left are filled in from the log after the next start")
	fs.Int64Var(&c.CheckpointMemory, "checkpoint-memory", c.CheckpointMemory, "bytes the checkpoints' in-memory indexes may take beyond the live one, so that at_exact_snapshot reads fork one rather than load its rows (0: default; negative: none)")
	fs.Int64Var(&c.BulkCatchUp, "bulk-catch-up", c.BulkCatchUp, "an empty read model this many entries or more behind the log's head catches up as a bulk load, its rows written once at the end (0: default; negative: never)")
	if c.Mode != ModeRegion {
		fs.StringVar(&regions, "regions", regions, "comma-separated regions served by in-process replicas")
		fs.BoolVar(&c.SyncAlways, "fsync", c.SyncAlways, "fsync the log on every write")
		fs.StringVar(&c.SecretsDir, "secrets", c.SecretsDir, "directory of the signing keys and idempotency secret (default: --data); the same on every hub node")
		fs.BoolVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "create the first realm and admin on an empty log (one hub node only)")
		fs.DurationVar(&c.HeartbeatInterval, "heartbeat", c.HeartbeatInterval, "append a heartbeat when the log was idle this long (0: never)")
	}
	if c.Mode != ModeAll {
		fs.StringVar(&c.NATSName, "nats-name", c.NATSName, "name of the embedded NATS server")
		fs.StringVar(&c.NATSListen, "nats-listen", c.NATSListen, "NATS client listener host:port (port -1: random)")
		fs.StringVar(&c.NATSTLSDir, "nats-tls-dir", c.NATSTLSDir, "directory of the NATS certificates and nkeys (natspki layout); secure mode: TLS on every link, credentials required (empty: plaintext)")
	}
	if c.Mode == ModeHub {
		fs.StringVar(&c.ClusterName, "cluster-name", c.ClusterName, "JetStream cluster name")
		fs.StringVar(&c.ClusterListen, "cluster", c.ClusterListen, "cluster route listener host:port (empty: a single hub node)")
		fs.StringVar(&routes, "routes", "", "comma-separated nats-route://host:port of every hub node")
		fs.StringVar(&c.LeafListen, "leaf-listen", c.LeafListen, "leaf-node listener host:port for the regions")
		fs.IntVar(&c.StreamReplicas, "replicas", c.StreamReplicas, "stream replicas (default: 3 when clustered, else 1)")
		fs.Uint64Var(&c.SnapshotEvery, "snapshot-every", c.SnapshotEvery, "publish a read-model snapshot after this many entries (0 and --snapshot-interval 0: never)")
		fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "publish a read-model snapshot at least this often while the log moves")
	}
	if c.Mode == ModeRegion {
		fs.StringVar(&c.Region, "region", c.Region, "the region this process serves")
		fs.StringVar(&hubLeaf, "hub-leaf", "", "comma-separated leaf URLs of the hub nodes, nats-leaf://host:port")
		fs.StringVar(&c.LogKeys, "log-keys", c.LogKeys, "file of the hub's log public keys (the hub writes it as log-keys.pub.json in its secrets directory)")
		fs.DurationVar(&c.HubWait, "hub-wait", c.HubWait, "how long to wait at start for the hub's stream")
		fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", c.JWKSMaxAge, "fetch the hub's signing keys again when the copy is this old: a key the hub dropped is refused within it")
		fs.BoolVar(&c.JoinFromSnapshot, "join-snapshot", c.JoinFromSnapshot, "start an empty read model from the hub's newest snapshot instead of replaying the log")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Regions = splitList(regions)
	c.Routes = splitList(routes)
	c.HubLeaf = splitList(hubLeaf)
	return c.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}
