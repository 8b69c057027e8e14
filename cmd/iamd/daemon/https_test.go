package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/nats-io/nats.go"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest/testca"
	"github.com/iam-project/iam/eventlog/bus"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
)

func newTestCA(t *testing.T) *testca.CA {
	t.Helper()
	ca, err := testca.New()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue writes a leaf for 127.0.0.1 to certFile and keyFile and returns its serial.
func issue(t *testing.T, ca *testca.CA, certFile, keyFile string) *big.Int {
	t.Helper()
	serial, err := ca.Issue(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return serial
}

// servedSerial dials addr trusting only pool and returns the leaf's serial.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestHTTPS: with --tls-cert and --tls-key iamd serves HTTPS only (TLS 1.2
// and up, HSTS); the OAuth and OIDC clients work against it trusting only
// the test CA; the issuer is the https URL; a reload serves a new
// certificate without a restart.
func TestHTTPS(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := issue(t, ca, certFile, keyFile)
	m := daemontest.StartWith(t, func(c *daemon.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	base := daemontest.URL(m)
	if !strings.HasPrefix(base, "https://") || m.Issuer != base || m.Bootstrap.TokenURL != base+"/oauth2/token" {
		t.Fatalf("got URL %s, issuer %s, bootstrap token URL %s; want the https URL throughout", base, m.Issuer, m.Bootstrap.TokenURL)
	}
	hc := &http.Client{Transport: openapitest.Transport(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}})}
	ctx := oidc.ClientContext(context.WithValue(context.Background(), oauth2.HTTPClient, hc), hc)

	cc := clientcredentials.Config{ClientID: m.Bootstrap.ClientID, ClientSecret: m.Bootstrap.ClientSecret, TokenURL: m.Bootstrap.TokenURL}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials over HTTPS: %v", err)
	}
	provider, err := oidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatalf("discovery over HTTPS: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "iam", SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, tok.AccessToken)
	if err != nil || idt.Issuer != base {
		t.Fatalf("go-oidc verify: got %v %v, want a token from %s", idt, err, base)
	}

	resp, err := hc.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
		t.Errorf("Strict-Transport-Security: got %q, want a max-age", h)
	}
	if resp, err := (&http.Client{}).Get("http://" + m.Addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plaintext HTTP to the HTTPS listener: got %d, want 400", resp.StatusCode)
		}
	}
	if c, err := tls.Dial("tcp", m.Addr, &tls.Config{RootCAs: ca.Pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("TLS 1.1: got a connection, want a refusal")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("a client not trusting the test CA: got an answer, want a certificate error")
	}

	// Rotation: new files, a reload, the new leaf on new connections.
	if got := servedSerial(t, m.Addr, ca.Pool); got.Cmp(first) != 0 {
		t.Fatalf("served serial %s, want %s", got, first)
	}
	second := issue(t, ca, certFile, keyFile)
	if err := m.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, m.Addr, ca.Pool); got.Cmp(second) != 0 {
		t.Fatalf("after reload: served serial %s, want the new %s", got, second)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.ReloadTLS(); err == nil {
		t.Error("reload of a broken file: got nil, want an error")
	}
	if got := servedSerial(t, m.Addr, ca.Pool); got.Cmp(second) != 0 {
		t.Fatalf("after a failed reload: served serial %s, want still %s", got, second)
	}
}

// TestPlaintextOnlyOnLoopback: plaintext HTTP on a non-loopback address
// needs --insecure-http; loopback needs nothing.
func TestPlaintextOnlyOnLoopback(t *testing.T) {
	c := daemon.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("the default (loopback, plaintext): %v", err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":8080", "10.1.2.3:80", "[::]:0"} {
		c.HTTPAddr = addr
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--insecure-http") {
			t.Errorf("--http %s without TLS: got %v, want an error naming --insecure-http", addr, err)
		}
	}
	c.HTTPAddr, c.TLSCert = "0.0.0.0:0", "tls.crt"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("--tls-cert alone: got %v, want an error naming --tls-key", err)
	}
	m := daemon.NewMain()
	m.Config.HTTPAddr, m.Config.DataDir = "0.0.0.0:0", t.TempDir()
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Errorf("Run on 0.0.0.0 without TLS: got %v, want an error naming --insecure-http", err)
	}
	m.Close()
	if err := m.ParseFlags([]string{"--http", "0.0.0.0:8080"}); err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Errorf("flags --http 0.0.0.0:8080: got %v, want an error naming --insecure-http", err)
	}

	m = daemontest.StartWith(t, func(c *daemon.Config) { c.HTTPAddr, c.InsecureHTTP = "0.0.0.0:0", true })
	_, port, _ := net.SplitHostPort(m.Addr)
	pub := &daemontest.Client{TB: t, Base: "http://127.0.0.1:" + port}
	pub.Must(http.StatusOK, "GET", "/healthz", nil)
}

// TestMaxConns: no more than --max-conns connections are served at once.
func TestMaxConns(t *testing.T) {
	m := daemontest.StartWith(t, func(c *daemon.Config) { c.MaxConns = 1 })
	held, err := net.Dial("tcp", m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func(timeout time.Duration) error {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(daemontest.URL(m) + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := fresh(300 * time.Millisecond); err == nil {
		t.Fatal("a second connection while one is held: got an answer, want none within 300ms")
	}
	held.Close()
	eventlogtest.Eventually(t, 5*time.Second, "a connection served once the held one closed", func() bool {
		return fresh(time.Second) == nil
	})
}

// TestReadyz_Cached: /readyz reads the lag monitor's last measurement
// instead of measuring (a log round trip, and a status published to the
// other processes) on every probe, and still turns 503 when a region
// falls behind and 200 when it caught up.
func TestReadyz_Cached(t *testing.T) {
	m := daemontest.StartWith(t, func(c *daemon.Config) { c.MaxLag = time.Second })
	nc, err := natsnode.Connect(m.NATSServer())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var measured atomic.Int64
	sub, err := nc.Subscribe(bus.StatusSubjectPrefix+".>", func(*nats.Msg) { measured.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	public := &daemontest.Client{TB: t, Base: daemontest.URL(m)}
	const probes = 60
	start := time.Now()
	for range probes {
		public.Must(http.StatusOK, "GET", "/readyz", nil)
	}
	elapsed := time.Since(start)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	regions := int64(len(m.Replicas()))
	// The monitor measures once a second; allow for a tick either side.
	if got, limit := measured.Load(), regions*(int64(elapsed/time.Second)+2); got > limit {
		t.Fatalf("%d probes in %s caused %d measurements, want at most %d (the monitor's ticks)", probes, elapsed, got, limit)
	}

	admin := daemontest.AdminClient(t, m)
	i := daemontest.RegionIndex(t, m, "us-east")
	m.Projectors()[i].Stop()
	admin.Must(http.StatusCreated, "POST", "/v1/groups", map[string]any{"name": "while us-east is behind"})
	eventlogtest.Eventually(t, 10*time.Second, "/readyz 503 with us-east behind", func() bool {
		r := public.Do("GET", "/readyz", nil)
		return r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != ""
	})
	if err := m.Projectors()[i].Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventlogtest.Eventually(t, 10*time.Second, "/readyz 200 once us-east caught up", func() bool {
		return public.Do("GET", "/readyz", nil).Status == http.StatusOK
	})
}

// TestNATSPlaintextOnlyOnLoopback: a hub or region whose NATS links leave
// loopback needs --nats-tls-dir, or --insecure-nats for a trusted network;
// on loopback (the tests, local runs) it needs neither.
func TestNATSPlaintextOnlyOnLoopback(t *testing.T) {
	hub := []string{"hub", "--issuer", "https://iam.example", "--regions", "hub-1", "--leaf-listen", "127.0.0.1:7422"}
	region := []string{"region", "--issuer", "https://iam.example", "--region", "eu-west", "--log-keys", "keys.json", "--hub-leaf", "nats-leaf://127.0.0.1:7422"}
	for _, args := range [][]string{hub, region} {
		if err := daemon.NewMain().ParseFlags(args); err != nil {
			t.Fatalf("%s on loopback: %v", args[0], err)
		}
	}
	for _, tc := range []struct{ args []string }{
		{append(append([]string{}, hub...), "--leaf-listen", "0.0.0.0:7422")},
		{append(append([]string{}, hub...), "--nats-listen", "10.0.0.1:4222")},
		{append(append([]string{}, hub...), "--cluster", "[::]:6222", "--routes", "nats-route://127.0.0.1:6222")},
		{append(append([]string{}, hub...), "--cluster", "127.0.0.1:6222", "--routes", "nats-route://10.0.0.2:6222")},
		{append(append([]string{}, region...), "--hub-leaf", "nats-leaf://hub.example:7422")},
	} {
		if err := daemon.NewMain().ParseFlags(tc.args); err == nil || !strings.Contains(err.Error(), "--insecure-nats") {
			t.Errorf("%v: got %v, want an error naming --insecure-nats", tc.args, err)
		}
		if err := daemon.NewMain().ParseFlags(append(tc.args, "--insecure-nats")); err != nil {
			t.Errorf("%v --insecure-nats: got %v, want it accepted", tc.args, err)
		}
		if err := daemon.NewMain().ParseFlags(append(tc.args, "--nats-tls-dir", "pki")); err != nil {
			t.Errorf("%v --nats-tls-dir: got %v, want it accepted", tc.args, err)
		}
	}
}
