package keyvault_test

import (
	"context"
	"testing"

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
