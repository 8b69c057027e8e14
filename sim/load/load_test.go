package load_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/iam-project/iam/sim/load"
)

func TestRun_Bare(t *testing.T) {
	srv := httptest.NewServer(load.BareCheckHandler())
	defer srv.Close()
	target := load.Target{Name: "bare", URL: srv.URL + "/v1/check", Header: http.Header{"Content-Type": {"application/json"}},
		Bodies: [][]byte{[]byte(`{"action":"read","resource":"hrn:here:data::r:x"}`), []byte(`{"action":"read","resource":"hrn:here:data::r:xy"}`)}}
	r, err := load.Run(context.Background(), target, load.Options{Conns: 2, Duration: 200 * time.Millisecond, Warmup: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Failures != 0 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Errorf("got %v, want answered requests, no failures and p99 >= p50 > 0", r)
	}
	// A body the bare server refuses counts as a failure.
	target.Bodies = [][]byte{[]byte(`{"nope":1}`)}
	r, err = load.Run(context.Background(), target, load.Options{Conns: 1, Duration: 50 * time.Millisecond, Warmup: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 0 || r.Failures == 0 || r.FirstFailure == "" {
		t.Errorf("got %v (%q), want only failures", r, r.FirstFailure)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := load.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, mod := range []func(*load.Config){
		func(c *load.Config) { c.Duration = 0 },
		func(c *load.Config) { c.Conns = 0 },
		func(c *load.Config) { c.Conns = 5000 },
		func(c *load.Config) { c.Mode = "eventual" },
		func(c *load.Config) { c.Auth = "basic" },
		func(c *load.Config) { c.Users = 0 },
	} {
		c := load.DefaultConfig()
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%+v: got valid, want an error", c)
		}
	}
}

// TestResult_RateCountsChecks: a boxcar's rate is in checks, not requests,
// and merging keeps it so.
func TestResult_RateCountsChecks(t *testing.T) {
	boxcar := load.Result{Name: "evaluations", Requests: 10, Checks: 100, Elapsed: time.Second}
	if got := boxcar.Rate(); got != 1000 {
		t.Fatalf("got %v checks/s, want 1000", got)
	}
	if got := (load.Result{}).Merge(boxcar).Merge(boxcar).Rate(); got != 1000 {
		t.Fatalf("merged: got %v checks/s, want 1000", got)
	}
	if got := (load.Result{Requests: 10, Elapsed: time.Second}).Rate(); got != 10 {
		t.Fatalf("single checks: got %v checks/s, want 10", got)
	}
}
