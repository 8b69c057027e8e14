package daemon_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// TestDataDirPrivate: a data directory and a secrets directory made with a
// wide mode are 0700 after start, and a secret left readable in the
// secrets directory is 0600; the log's public keys stay readable.
func TestDataDirPrivate(t *testing.T) {
	root := t.TempDir()
	data, secrets := filepath.Join(root, "data"), filepath.Join(root, "secrets")
	for _, d := range []string{data, secrets} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if err := daemon.InitSecrets(secrets); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(secrets, "idempotency.key")
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	daemontest.StartWith(t, func(c *daemon.Config) { c.DataDir, c.SecretsDir = data, secrets })
	for path, want := range map[string]fs.FileMode{data: 0o700, secrets: 0o700, loose: 0o600,
		filepath.Join(secrets, "log-keys.pub.json"): 0o644} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o after start, want %o", path, got, want)
		}
	}
}

// TestAddrFile: --addr-file receives the listeners' URLs and the pid once
// the process is ready.
func TestAddrFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "addr.json")
	m := daemontest.StartWith(t, func(c *daemon.Config) { c.AddrFile = file })
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got daemon.Listeners
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if got.PID != os.Getpid() || got.HTTP != m.URL() || got.NATS == "" || got.Cluster != "" || got.Leaf != "" {
		t.Errorf("addr file %+v, want pid %d, http %s, a nats URL and no cluster or leaf", got, os.Getpid(), m.URL())
	}
}
