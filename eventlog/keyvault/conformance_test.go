package keyvault_test

import (
	"context"
	"strings"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/keyvault"
	"github.com/iam-project/iam/eventlog/keyvault/keyvaulttest"
)

var (
	_ keyvaulttest.Vault = (*keyvault.Vault)(nil)
	_ keyvaulttest.Vault = (*keyvault.Lazy)(nil)
	// The suite's interface is api.Vault's method set, both ways.
	_ api.Vault          = keyvaulttest.Vault(nil)
	_ keyvaulttest.Vault = api.Vault(nil)
)

// The KV-backed vault meets the Vault contract, each case on its own
// JetStream server.
func TestVault_Conformance(t *testing.T) {
	keyvaulttest.RunVaultTests(t, func(t *testing.T) keyvaulttest.Vault {
		v, err := keyvault.Open(context.Background(), eventlogtest.MustOpenLog(t, eventlog.Config{}), "")
		if err != nil {
			t.Fatal(err)
		}
		return v
	})
}

// The lazily opened vault meets it too: its first use opens the bucket.
func TestLazy_Conformance(t *testing.T) {
	keyvaulttest.RunVaultTests(t, func(t *testing.T) keyvaulttest.Vault {
		return &keyvault.Lazy{Log: eventlogtest.MustOpenLog(t, eventlog.Config{})}
	})
}

// A vault whose JetStream has gone (a hub node down, its stream without a
// leader) answers unavailable, which a client retries, never an internal
// error: a 3-node hub's first user once got a 500 in CI while its streams
// elected their leaders.
func TestVault_UnreachableIsUnavailable(t *testing.T) {
	s := eventlogtest.MustRunJetStream(t)
	l, err := eventlog.Open(context.Background(), eventlogtest.MustConnect(t, s), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := keyvault.Open(context.Background(), l, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DataKey(context.Background(), "r1", "u1", true); err != nil {
		t.Fatalf("data key while the server runs: %v", err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, call := range map[string]func() error{
		"DataKey":        func() error { _, err := v.DataKey(ctx, "r1", "u2", true); return err },
		"Pepper":         func() error { _, err := v.Pepper(ctx, "r1"); return err },
		"ExistingPepper": func() error { _, err := v.ExistingPepper(ctx, "r1"); return err },
		"Destroy":        func() error { return v.Destroy(ctx, "r1", "u1") },
	} {
		err := call()
		if iam.ErrorCode(err) != iam.EUnavailable {
			t.Errorf("%s with the server gone: got %v (code %q), want %s", name, err, iam.ErrorCode(err), iam.EUnavailable)
		}
		// A client is told to try again, not what the NATS client said.
		if msg := iam.ErrorMessage(err); strings.Contains(msg, "nats") || strings.Contains(msg, "deadline") {
			t.Errorf("%s with the server gone: a client reads %q, the cause of a failure behind the API", name, msg)
		}
	}
}
