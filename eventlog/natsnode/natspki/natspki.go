// Package natspki generates the certificates and nkeys of a secure NATS
// topology (natsnode.Security) into a directory, and reads a node's
// natsnode.Security back from it: for tests, and for local.sh to stand up
// a secured hub and regions. Production deployments bring their own PKI;
// the layout below is then only a convention for iamd's --nats-tls-dir.
//
// Layout (files 0600, directories 0700):
//
//	route-ca.pem route-ca.key leaf-ca.pem leaf-ca.key client-ca.pem client-ca.key
//	route.pass
//	hub/<node>/{route,leaf,client}.{pem,key}
//	region/<region>/leaf.pem leaf.key leaf.seed leaf.pub
//	https-ca.pem https-ca.key https/<name>.{pem,key}   (with Options.HTTPS)
//
// The HTTPS certificates (iamd's --tls-cert, --tls-key) come from a fourth
// CA of their own: clients trust https-ca.pem, which vouches for no NATS
// link.
//
// Three CAs, so that a stolen region certificate passes neither a route
// handshake nor the hub's client listener.
package natspki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/iam-project/iam/eventlog/natsnode"
)

// Options says what to generate.
type Options struct {
	// Hubs names the hub nodes (their server names, e.g. hub-0).
	Hubs []string
	// Regions names the regions (their JetStream domains).
	Regions []string
	// Hosts are extra route-certificate SANs (IPs or DNS names) the hub
	// nodes are dialled on; 127.0.0.1 and localhost are always included.
	Hosts []string
	// HTTPS names the processes (hub nodes and regions) that get an HTTPS
	// server certificate, https/<name>.{pem,key}, from the HTTPS CA
	// (https-ca.pem): SANs 127.0.0.1, localhost, the name and Hosts.
	HTTPS []string
	// Validity of every certificate. Default one year.
	Validity time.Duration
}

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Generate writes a fresh PKI for o into dir, creating it. Existing files
// are overwritten.
func Generate(dir string, o Options) error {
	if o.Validity <= 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	g := gen{dir: dir, validity: o.Validity}
	cas := map[string]*ca{}
	for _, name := range []string{"route", "leaf", "client"} {
		c, err := g.newCA("iam NATS " + name + " CA")
		if err != nil {
			return err
		}
		if err := g.writeCert(name+"-ca", c.cert.Raw, c.key); err != nil {
			return err
		}
		cas[name] = c
	}
	pass := make([]byte, 24)
	if _, err := rand.Read(pass); err != nil {
		return fmt.Errorf("route password: %w", err)
	}
	if err := g.write("route.pass", []byte(hex.EncodeToString(pass)+"\n")); err != nil {
		return err
	}
	var ips []net.IP
	dns := []string{"localhost"}
	for _, h := range append([]string{"127.0.0.1"}, o.Hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	for _, h := range o.Hubs {
		base := filepath.Join("hub", h)
		issue := []struct {
			file           string
			ca             *ca
			dns            []string
			server, client bool
		}{
			{"route", cas["route"], append([]string{h}, dns...), true, true},
			{"leaf", cas["leaf"], []string{natsnode.DefaultHubLeafTLSName}, true, false},
			{"client", cas["client"], []string{"client.hub.iam.local"}, true, false},
		}
		for _, i := range issue {
			der, key, err := g.issue(i.ca, h, i.dns, ips, i.server, i.client)
			if err != nil {
				return fmt.Errorf("hub %s %s certificate: %w", h, i.file, err)
			}
			if err := g.writeCert(filepath.Join(base, i.file), der, key); err != nil {
				return err
			}
		}
	}
	for _, r := range o.Regions {
		base := filepath.Join("region", r)
		der, key, err := g.issue(cas["leaf"], r, []string{r + ".leaf.iam.local"}, nil, false, true)
		if err != nil {
			return fmt.Errorf("region %s certificate: %w", r, err)
		}
		if err := g.writeCert(filepath.Join(base, "leaf"), der, key); err != nil {
			return err
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return fmt.Errorf("region %s nkey: %w", r, err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		if err := g.write(filepath.Join(base, "leaf.seed"), append(seed, '\n')); err != nil {
			return err
		}
		if err := g.write(filepath.Join(base, "leaf.pub"), []byte(pub+"\n")); err != nil {
			return err
		}
	}
	if len(o.HTTPS) == 0 {
		return nil
	}
	httpsCA, err := g.newCA("iam HTTPS CA")
	if err != nil {
		return err
	}
	if err := g.writeCert("https-ca", httpsCA.cert.Raw, httpsCA.key); err != nil {
		return err
	}
	for _, name := range o.HTTPS {
		der, key, err := g.issue(httpsCA, name, append([]string{name}, dns...), ips, true, false)
		if err != nil {
			return fmt.Errorf("%s HTTPS certificate: %w", name, err)
		}
		if err := g.writeCert(filepath.Join("https", name), der, key); err != nil {
			return err
		}
	}
	return nil
}

// Hub returns the Security of hub node node from dir. It reads the public
// leaf nkeys of every region under dir/region, so the hub admits exactly
// the regions generated there.
func Hub(dir, node string) (*natsnode.Security, error) {
	base := filepath.Join(dir, "hub", node)
	if _, err := os.Stat(base); err != nil {
		return nil, fmt.Errorf("nats pki: hub node %s: %w", node, err)
	}
	pubs, err := filepath.Glob(filepath.Join(dir, "region", "*", "leaf.pub"))
	if err != nil {
		return nil, fmt.Errorf("nats pki: %w", err)
	}
	keys := map[string]string{}
	for _, p := range pubs {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("nats pki: region key: %w", err)
		}
		keys[filepath.Base(filepath.Dir(p))] = strings.TrimSpace(string(b))
	}
	return &natsnode.Security{
		LeafCA: filepath.Join(dir, "leaf-ca.pem"), LeafCert: filepath.Join(base, "leaf.pem"), LeafKey: filepath.Join(base, "leaf.key"),
		RouteCA: filepath.Join(dir, "route-ca.pem"), RouteCert: filepath.Join(base, "route.pem"), RouteKey: filepath.Join(base, "route.key"),
		RoutePasswordFile: filepath.Join(dir, "route.pass"),
		ClientCA:          filepath.Join(dir, "client-ca.pem"), ClientCert: filepath.Join(base, "client.pem"), ClientKey: filepath.Join(base, "client.key"),
		RegionKeys: keys,
	}, nil
}

// Region returns the Security of region from dir.
func Region(dir, region string) (*natsnode.Security, error) {
	base := filepath.Join(dir, "region", region)
	if _, err := os.Stat(base); err != nil {
		return nil, fmt.Errorf("nats pki: region %s: %w", region, err)
	}
	return &natsnode.Security{
		LeafCA:       filepath.Join(dir, "leaf-ca.pem"),
		LeafCert:     filepath.Join(base, "leaf.pem"),
		LeafKey:      filepath.Join(base, "leaf.key"),
		LeafSeedFile: filepath.Join(base, "leaf.seed"),
	}, nil
}

type gen struct {
	dir      string
	validity time.Duration
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func (g gen) newCA(cn string) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", cn, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"iam"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(g.validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cn, err)
	}
	return &ca{cert: cert, key: key}, nil
}

func (g gen) issue(c *ca, cn string, dns []string, ips []net.IP, server, client bool) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	var eku []x509.ExtKeyUsage
	if server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if client {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"iam"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(g.validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	return der, key, err
}

func (g gen) writeCert(base string, der []byte, key *ecdsa.PrivateKey) error {
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%s key: %w", base, err)
	}
	if err := g.write(base+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return err
	}
	return g.write(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}))
}

// write writes one file 0600 in 0700 directories; Chmod too, in case the
// file or directory existed with a wider mode.
func (g gen) write(rel string, data []byte) error {
	p := filepath.Join(g.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("nats pki: %w", err)
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("nats pki: %w", err)
		}
		if d == filepath.Clean(g.dir) || d == filepath.Dir(d) {
			break
		}
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return fmt.Errorf("nats pki: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		return fmt.Errorf("nats pki: %w", err)
	}
	return nil
}
