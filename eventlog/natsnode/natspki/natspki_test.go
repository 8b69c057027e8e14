package natspki_test

import (
	"crypto/tls"
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/iam-project/iam/eventlog/natsnode/natspki"
)

// TestGenerate checks that every secret is private to its owner (files
// 0600 in 0700 directories) and that Hub and Region name files that exist.
func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := natspki.Generate(dir, natspki.Options{Hubs: []string{"hub-0", "hub-1"}, Regions: []string{"eu-west", "us-east"}}); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := natspki.Hub(dir, "hub-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hub.RegionKeys) != 2 {
		t.Fatalf("hub admits %d regions, want 2", len(hub.RegionKeys))
	}
	region, err := natspki.Region(dir, "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(region.LeafSeedFile)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(string(seed[:len(seed)-1])))
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := kp.PublicKey(); pub != hub.RegionKeys["eu-west"] {
		t.Errorf("hub's eu-west key %s, want the seed's %s", hub.RegionKeys["eu-west"], pub)
	}
	for _, f := range []string{hub.LeafCA, hub.LeafCert, hub.LeafKey, hub.RouteCA, hub.RouteCert, hub.RouteKey,
		hub.RoutePasswordFile, hub.ClientCA, hub.ClientCert, hub.ClientKey, region.LeafCert, region.LeafKey} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if _, err := natspki.Hub(dir, "hub-9"); err == nil {
		t.Error("Hub of an unknown node: no error, want one")
	}
}

// TestGenerate_HTTPS checks the HTTPS server certificates: each verifies
// against https-ca.pem for 127.0.0.1 and localhost, and not against a NATS
// CA.
func TestGenerate_HTTPS(t *testing.T) {
	dir := t.TempDir()
	if err := natspki.Generate(dir, natspki.Options{Hubs: []string{"hub-1"}, Regions: []string{"eu-west"},
		HTTPS: []string{"hub-1", "eu-west"}}); err != nil {
		t.Fatal(err)
	}
	pool := func(file string) *x509.CertPool {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("%s: no certificate", file)
		}
		return p
	}
	for _, name := range []string{"hub-1", "eu-west"} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "https", name+".pem"), filepath.Join(dir, "https", name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"127.0.0.1", "localhost"} {
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool("https-ca.pem")}); err != nil {
				t.Errorf("%s for %s: %v", name, host, err)
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: pool("leaf-ca.pem")}); err == nil {
			t.Errorf("%s verifies against the leaf CA, want only the HTTPS CA", name)
		}
	}
}
