package natsnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/iam-project/iam/eventlog/bus"
)

// Account is the NATS account that holds iam's stream, buckets and
// subjects in secure mode. Plaintext topologies use the global account.
const Account = "IAM"

// DefaultHubLeafTLSName is the name a region verifies on the hub's leaf
// certificate: one name for every hub node, so that the certificate does
// not depend on the address the region dials.
const DefaultHubLeafTLSName = "leaf.hub.iam.local"

// routeUser is the user name of routes. The password is a second factor
// on top of route mTLS; the name carries no meaning.
const routeUser = "route"

// Security switches a node to secure mode: TLS on every listener and
// link, no anonymous user, and iam's data in Account. Every field names a
// file, never a secret value, so that secrets do not show up in process
// listings or logs. See docs/deploy/nats-security.md.
//
// A hub node needs the Route*, Leaf*, Client* files and RegionKeys; a
// region needs LeafCA, LeafCert, LeafKey and LeafSeedFile.
type Security struct {
	// LeafCA (PEM) verifies the other side of a leaf link: on a hub the
	// regions' client certificates, in a region the hub's certificate.
	LeafCA string
	// LeafCert and LeafKey (PEM): on a hub the leaf listener's server
	// certificate, in a region its client certificate for the hub link.
	LeafCert, LeafKey string

	// RouteCA, RouteCert and RouteKey (PEM), hub only: mutual TLS between
	// hub nodes, with a CA of its own so that no region certificate
	// passes a route handshake. RouteCert needs a SAN matching the route
	// URLs' hosts: the server verifies the dialled host.
	RouteCA, RouteCert, RouteKey string
	// RoutePasswordFile, hub only, holds the routes' shared password.
	RoutePasswordFile string

	// ClientCA, ClientCert and ClientKey (PEM), hub only: the client
	// listener. A clustered nats-server cannot run without one
	// (DontListen never starts routing in v2.15), so it stays on but
	// requires a certificate from ClientCA, and no user may connect
	// through it.
	ClientCA, ClientCert, ClientKey string

	// RegionKeys, hub only, maps each region to the public nkey of its
	// leaf link. Public keys are not secret, so they are values.
	RegionKeys map[string]string

	// LeafSeedFile, region only, holds the nkey seed the region signs the
	// hub's nonce with when its leaf link connects.
	LeafSeedFile string
	// HubLeafTLSName is the name verified on the hub's leaf certificate.
	// Default DefaultHubLeafTLSName.
	HubLeafTLSName string
}

// InboxPrefix is the reply prefix of a region's processes. The hub only
// delivers replies under it to that region, so a region never sees
// another's replies; Connect sets it.
func InboxPrefix(region string) string { return "_INBOX_" + region }

// RegionLeafPermissions are the permissions of a region's leaf link on
// the hub, from the region's side as for a client: Publish is what it may
// send into the hub, Subscribe what the hub may deliver to it. The hub
// checks Publish on the subject as sent, before the $JS.hub.API mapping,
// hence the domain prefix. Each subject is needed by a read the region
// makes (eventlog.Attach and Follow, the snapshot join) or by package bus;
// a subject missing here makes that call time out in the region, so the
// list is tested (secure_test.go) and documented in
// docs/deploy/nats-security.md. CONSUMER.CREATE also lets the region pick
// a push consumer's deliver subject: the known gap described there.
func RegionLeafPermissions(region string) *server.Permissions {
	js := "$JS." + HubDomain + ".API."
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			js + "STREAM.INFO.IAM",
			js + "DIRECT.GET.IAM",
			js + "DIRECT.GET.IAM.>",
			js + "CONSUMER.CREATE.IAM.>",
			js + "CONSUMER.MSG.NEXT.IAM.>",
			js + "CONSUMER.INFO.IAM.>",
			js + "STREAM.INFO.OBJ_IAM_SNAPSHOTS",
			js + "DIRECT.GET.OBJ_IAM_SNAPSHOTS",
			js + "DIRECT.GET.OBJ_IAM_SNAPSHOTS.>",
			js + "CONSUMER.CREATE.OBJ_IAM_SNAPSHOTS.>",
			"$JS.FC.OBJ_IAM_SNAPSHOTS.>",
			bus.RPCSubject,
			bus.KeysSubject,
			"iam.status." + region,
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			InboxPrefix(region) + ".>",
			"iam.status.*",
		}},
	}
}

// inProcess is how this process connects to a secure node: an nkey made
// at start and known only to this process, usable only in-process.
type inProcess struct {
	kp    nkeys.KeyPair
	inbox string // custom inbox prefix, regions only
}

// inProcessSeedFile holds, in a secure node's JetStream store directory,
// the seed of the nkey RunNode made at start for this process's own
// in-process connections (0600): Connect and StreamLeader find the identity
// from the server itself, with no registry in memory, and plaintext callers
// are unchanged.
const inProcessSeedFile = "iam-inprocess.nk"

// lookupSecure returns the in-process identity of a secure node s.
func lookupSecure(s *server.Server) (*inProcess, bool) {
	js := s.JetStreamConfig()
	if js == nil {
		return nil, false
	}
	seed, err := os.ReadFile(filepath.Join(js.StoreDir, inProcessSeedFile))
	if err != nil {
		return nil, false
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, false
	}
	p := &inProcess{kp: kp}
	if js.Domain != HubDomain {
		p.inbox = InboxPrefix(js.Domain)
	}
	return p, true
}

// saveSecure records self as s's in-process identity (see lookupSecure).
func saveSecure(s *server.Server, self *inProcess) error {
	seed, err := self.kp.Seed()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.JetStreamConfig().StoreDir, inProcessSeedFile), seed, 0o600)
}

// accountOf is the account iam's data lives in on s.
func accountOf(s *server.Server) string {
	if _, ok := lookupSecure(s); ok {
		return Account
	}
	return server.DEFAULT_GLOBAL_ACCOUNT
}

// connectInProcess connects to a secure node without a socket.
func connectInProcess(s *server.Server, p *inProcess, opts ...nats.Option) (*nats.Conn, error) {
	pub, err := p.kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("connect in-process: %w", err)
	}
	o := []nats.Option{
		nats.Name("iam"),
		nats.InProcessServer(s),
		nats.Nkey(pub, p.kp.Sign),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if p.inbox != "" {
		o = append(o, nats.CustomInboxPrefix(p.inbox))
	}
	nc, err := nats.Connect("", append(o, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect in-process to %s: %w", s.Name(), err)
	}
	return nc, nil
}

// jsAccount returns account name with JetStream enabled. Its limits are
// unexported and cannot be set before start in Go, and a region's leaf
// CONNECT reads them at connect time, so only the account goes through the
// config parser.
func jsAccount(name string) (*server.Account, error) {
	o := &server.Options{}
	if err := o.ProcessConfigString(fmt.Sprintf("accounts: { %s: { jetstream: enabled } }", name)); err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	for _, a := range o.Accounts {
		if a.Name == name {
			return a, nil
		}
	}
	return nil, fmt.Errorf("account %s: not parsed", name)
}

func connTypes(ts ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, t := range ts {
		m[t] = struct{}{}
	}
	return m
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA %s: no PEM certificate", path)
	}
	return p, nil
}

func loadCert(cert, key string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s: %w", cert, err)
	}
	return c, nil
}

// mutualTLS accepts and dials with cert, and requires and verifies the
// peer's certificate against ca: routes and the hub's client listener.
func mutualTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	ca, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	c, err := loadCert(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c},
		RootCAs:      ca,
		ClientCAs:    ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// secureHub sets the hub's options: locked client listener, mTLS routes
// with a password, a leaf listener requiring region certificates, and
// nkey users: the in-process user (all of the account) and one leaf user
// per region. No user, no anonymous access: a leaf without Username, Nkey
// or Users of its own is authenticated against these nkeys, which carry
// per-user permissions and connection types.
func secureHub(opts *server.Options, sec *Security, self nkeys.KeyPair) error {
	if len(sec.RegionKeys) == 0 {
		return errors.New("security: RegionKeys is empty: no region could connect")
	}
	acc, err := jsAccount(Account)
	if err != nil {
		return err
	}
	pub, err := self.PublicKey()
	if err != nil {
		return err
	}
	users := []*server.NkeyUser{{Nkey: pub, Account: acc, AllowedConnectionTypes: connTypes(jwt.ConnectionTypeInProcess)}}
	for region, key := range sec.RegionKeys {
		if !nkeys.IsValidPublicUserKey(key) {
			return fmt.Errorf("security: region %s: %q is not a public user nkey", region, key)
		}
		users = append(users, &server.NkeyUser{
			Nkey: key, Account: acc,
			Permissions:            RegionLeafPermissions(region),
			AllowedConnectionTypes: connTypes(jwt.ConnectionTypeLeafnode),
		})
	}
	opts.Accounts, opts.Nkeys = []*server.Account{acc}, users
	if opts.TLSConfig, err = mutualTLS(sec.ClientCA, sec.ClientCert, sec.ClientKey); err != nil {
		return fmt.Errorf("security: client listener: %w", err)
	}
	opts.TLSTimeout, opts.AuthTimeout = 2, 2
	if opts.Cluster.Port != 0 {
		pass, err := os.ReadFile(sec.RoutePasswordFile)
		if err != nil {
			return fmt.Errorf("security: route password: %w", err)
		}
		p := strings.TrimSpace(string(pass))
		if p == "" {
			return fmt.Errorf("security: route password file %s is empty", sec.RoutePasswordFile)
		}
		if opts.Cluster.TLSConfig, err = mutualTLS(sec.RouteCA, sec.RouteCert, sec.RouteKey); err != nil {
			return fmt.Errorf("security: routes: %w", err)
		}
		opts.Cluster.Username, opts.Cluster.Password = routeUser, p
		opts.Cluster.TLSTimeout, opts.Cluster.AuthTimeout = 2, 2
		opts.Cluster.NoAdvertise = true
		for _, r := range opts.Routes {
			r.User = url.UserPassword(routeUser, p)
		}
	}
	if opts.LeafNode.Port != 0 {
		ca, err := loadPool(sec.LeafCA)
		if err != nil {
			return fmt.Errorf("security: leaf listener: %w", err)
		}
		c, err := loadCert(sec.LeafCert, sec.LeafKey)
		if err != nil {
			return fmt.Errorf("security: leaf listener: %w", err)
		}
		opts.LeafNode.TLSConfig = &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{c},
			ClientCAs:    ca,
			ClientAuth:   tls.RequireAndVerifyClientCert,
		}
		opts.LeafNode.TLSTimeout, opts.LeafNode.AuthTimeout = 2, 2
	}
	return nil
}

// secureRegion sets a region's options: no listener at all, the
// in-process user, and a leaf remote that verifies the hub's certificate,
// presents the region's, and signs the hub's nonce with the region seed.
func secureRegion(opts *server.Options, sec *Security, self nkeys.KeyPair) error {
	acc, err := jsAccount(Account)
	if err != nil {
		return err
	}
	pub, err := self.PublicKey()
	if err != nil {
		return err
	}
	opts.Accounts = []*server.Account{acc}
	opts.Nkeys = []*server.NkeyUser{{Nkey: pub, Account: acc, AllowedConnectionTypes: connTypes(jwt.ConnectionTypeInProcess)}}
	opts.DontListen = true
	seed, err := os.ReadFile(sec.LeafSeedFile)
	if err != nil {
		return fmt.Errorf("security: leaf seed: %w", err)
	}
	seed = []byte(strings.TrimSpace(string(seed)))
	if _, err := nkeys.FromSeed(seed); err != nil {
		return fmt.Errorf("security: leaf seed %s: %w", sec.LeafSeedFile, err)
	}
	ca, err := loadPool(sec.LeafCA)
	if err != nil {
		return fmt.Errorf("security: leaf remote: %w", err)
	}
	c, err := loadCert(sec.LeafCert, sec.LeafKey)
	if err != nil {
		return fmt.Errorf("security: leaf remote: %w", err)
	}
	name := sec.HubLeafTLSName
	if name == "" {
		name = DefaultHubLeafTLSName
	}
	for _, r := range opts.LeafNode.Remotes {
		r.LocalAccount = Account
		r.Nkey = string(seed)
		r.TLS = true
		r.TLSTimeout = 2
		r.TLSConfig = &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{c},
			RootCAs:      ca,
			ServerName:   name,
		}
	}
	return nil
}
