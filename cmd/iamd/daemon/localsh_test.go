package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon"
)

// TestPKI: `iamd pki DIR` writes the NATS PKI, the HTTPS CA and one server
// certificate per process, and the hub's secrets with the log's public
// keys, every secret 0600.
func TestPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := daemon.PKI([]string{"--hubs", "hub-1,hub-2", "--regions", "eu-west", dir}, os.Stderr); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"route-ca.pem", "leaf-ca.pem", "client-ca.pem", "https-ca.pem", "route.pass",
		"hub/hub-2/route.pem", "region/eu-west/leaf.seed", "https/hub-1.pem", "https/hub-2.key", "https/eu-west.pem",
		"secrets/idempotency.key", "secrets/signing-keys.sealed", "secrets/log-keys.sealed", "secrets/log-keys.pub.json"} {
		info, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 && f != "secrets/log-keys.pub.json" {
			t.Errorf("%s: mode %o, want 0600", f, perm)
		}
	}
	if err := daemon.PKI([]string{dir, "extra"}, new(bytes.Buffer)); err == nil {
		t.Error("two directories: no error, want one")
	}
}

// TestLocalSh runs docs/deploy/local.sh start and stop: the five processes
// answer over HTTPS verified against topology.json's CA, topology.json has
// the contract's shape (shared/API.md), a token for the bootstrap admin
// comes from a region, and stop leaves no process.
func TestLocalSh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five iamd processes (about 20 s)")
	}
	for _, tool := range []string{"bash", "go", "curl", "jq", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("local.sh needs %s", tool)
		}
	}
	script, err := filepath.Abs("../../../docs/deploy/local.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(arg string) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", script, arg, dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("local.sh %s: %v\n%s", arg, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("bash", script, "stop", dir).Run() })
	run("start")

	data, err := os.ReadFile(filepath.Join(dir, "topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if got := keys(raw); !slices.Equal(got, []string{"bootstrap", "ca", "hub", "regions"}) {
		t.Fatalf("topology.json keys %v", got)
	}
	var topo struct {
		CA, Bootstrap string
		Hub, Regions  []map[string]json.RawMessage
	}
	if err := json.Unmarshal(data, &topo); err != nil {
		t.Fatal(err)
	}
	if len(topo.Hub) != 3 || len(topo.Regions) != 2 {
		t.Fatalf("%d hub nodes and %d regions, want 3 and 2:\n%s", len(topo.Hub), len(topo.Regions), data)
	}
	caPEM, err := os.ReadFile(topo.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s: no certificate", topo.CA)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: openapitest.Transport(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})}
	var pids []int
	check := func(p map[string]json.RawMessage, want []string) (name, httpURL string) {
		if got := keys(p); !slices.Equal(got, want) {
			t.Errorf("entry %s: keys %v, want %v", p["name"], got, want)
		}
		var pid int
		_ = json.Unmarshal(p["name"], &name)
		_ = json.Unmarshal(p["http"], &httpURL)
		_ = json.Unmarshal(p["pid"], &pid)
		pids = append(pids, pid)
		for _, k := range []string{"nats", "cluster", "leaf"} {
			if v, ok := p[k]; ok && !strings.HasPrefix(string(v), `"tls://127.0.0.1:`) {
				t.Errorf("%s %s: %s, want tls://127.0.0.1:PORT", name, k, v)
			}
		}
		if !strings.HasPrefix(httpURL, "https://127.0.0.1:") {
			t.Errorf("%s http: %s, want https://127.0.0.1:PORT", name, httpURL)
		}
		resp, err := client.Get(httpURL + "/readyz")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /readyz: %d", name, resp.StatusCode)
		}
		return
	}
	for i, h := range topo.Hub {
		if name, _ := check(h, []string{"cluster", "http", "leaf", "name", "nats", "pid"}); name != []string{"hub-1", "hub-2", "hub-3"}[i] {
			t.Errorf("hub %d is %q", i, name)
		}
	}
	var euURL string
	for i, r := range topo.Regions {
		// A secure region opens no NATS listener: no "nats".
		name, u := check(r, []string{"creds", "http", "name", "pid"})
		if name != []string{"eu-west", "us-east"}[i] {
			t.Errorf("region %d is %q", i, name)
		}
		if name == "eu-west" {
			euURL = u
		}
		var creds string
		_ = json.Unmarshal(r["creds"], &creds)
		if seed, err := os.ReadFile(creds); err != nil || !strings.HasPrefix(string(seed), "SU") {
			t.Errorf("%s creds %s: not an nkey user seed (%v)", name, creds, err)
		}
	}
	var admin struct{ ClientID, ClientSecret string }
	if b, err := os.ReadFile(topo.Bootstrap); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &admin); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, euURL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(admin.ClientID), url.QueryEscape(admin.ClientSecret))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token from eu-west: %d, want 200", resp.StatusCode)
	}
	for _, name := range []string{"hub-1", "eu-west"} {
		info, err := os.Stat(filepath.Join(dir, name, "data"))
		if err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s data dir: %v, want mode 0700", name, info)
		}
	}

	run("stop")
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("pid %d still runs after stop", pid)
		}
	}
}

// running reports whether pid is a live process: not gone, and not a
// zombie waiting for whoever adopted it to reap it.
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
