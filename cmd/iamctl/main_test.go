package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// fakeIAM answers the token endpoint and GET /v1/replicas.
type fakeIAM struct {
	*httptest.Server
	replicaCalls atomic.Int64
	mu           sync.Mutex
	auth         []string
}

func newFakeIAM(t *testing.T) *fakeIAM {
	f := &fakeIAM{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if id != "cid" || secret != "csecret" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"at-1","token_type":"bearer","expires_in":3600}`)
	})
	mux.HandleFunc("GET /v1/replicas", func(w http.ResponseWriter, r *http.Request) {
		f.replicaCalls.Add(1)
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"replicas":[
			{"region":"eu-west","appliedToken":"ct1.a","headToken":"ct1.a","lagEvents":0,"lagSeconds":0,"healthy":true},
			{"region":"us-east","appliedToken":"ct1.5","headToken":"ct1.a","lagEvents":5,"lagSeconds":42.5,"healthy":false,"error":"lag 42.5s is over the 30s threshold"}]}`)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func testMain(env map[string]string) (*Main, *bytes.Buffer) {
	var out bytes.Buffer
	return &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(k string) string { return env[k] }, Now: time.Now}, &out
}

func TestLag(t *testing.T) {
	f := newFakeIAM(t)
	boot := filepath.Join(t.TempDir(), "bootstrap-admin.json")
	data, _ := json.Marshal(map[string]string{"realm": "org1", "clientId": "cid", "clientSecret": "csecret", "tokenUrl": f.URL + "/oauth2/token"})
	if err := os.WriteFile(boot, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"token flag", nil, []string{"lag", "--url", f.URL, "--token", "at-1"}},
		{"client credentials", nil, []string{"lag", "--url", f.URL, "--client-id", "cid", "--client-secret", "csecret"}},
		{"bootstrap file", nil, []string{"lag", "--url", f.URL, "--bootstrap", boot}},
		{"environment", map[string]string{"IAM_URL": f.URL, "IAM_TOKEN": "at-1"}, []string{"lag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, out := testMain(tc.env)
			if err := m.Run(context.Background(), tc.args); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("got %d lines, want a header and 2 rows:\n%s", len(lines), out)
			}
			for i, want := range [][]string{
				{"REGION", "APPLIED", "HEAD", "LAG EVENTS", "LAG SECONDS", "STATE"},
				{"eu-west", "ct1.a", "0", "0.000", "ready"},
				{"us-east", "ct1.5", "5", "42.500", "NOT READY: lag 42.5s is over the 30s threshold"},
			} {
				for _, w := range want {
					if !strings.Contains(lines[i], w) {
						t.Fatalf("line %d: got %q, want it to contain %q", i, lines[i], w)
					}
				}
			}
			f.mu.Lock()
			got := f.auth[len(f.auth)-1]
			f.mu.Unlock()
			if got != "Bearer at-1" {
				t.Fatalf("got Authorization %q, want Bearer at-1", got)
			}
		})
	}
}

func TestLag_Watch(t *testing.T) {
	f := newFakeIAM(t)
	m, out := testMain(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var mu sync.Mutex
	m.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	go func() {
		done <- m.Run(ctx, []string{"lag", "--watch", "--interval", "100ms", "--url", f.URL, "--token", "at-1"})
	}()
	eventlogtest.Eventually(t, 10*time.Second, "3 refreshes", func() bool { return f.replicaCalls.Load() >= 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled after the interrupt", err)
	}
	mu.Lock()
	s := out.String()
	mu.Unlock()
	if n := strings.Count(s, "\x1b[H\x1b[2J"); n < 3 {
		t.Fatalf("got %d screen clears, want at least 3", n)
	}
	if n := strings.Count(s, "us-east"); n < 3 {
		t.Fatalf("got the table %d times, want at least 3:\n%s", n, s)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRun_Usage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"lag", "--url", "http://127.0.0.1:1"}, // no credentials
		{"lag", "--interval", "1ms", "--token", "x"},
		{"check", "--token", "x"},
		{"users", "frob"},
		{"groups", "add-member", "g-1"}, // one argument short
	} {
		m, _ := testMain(nil)
		if err := m.Run(context.Background(), args); !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}
