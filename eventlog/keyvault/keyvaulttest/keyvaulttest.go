// Package keyvaulttest is the conformance suite of the key vault, the
// api.Vault interface (api/deps.go), run by the tests of every
// implementation (OpenFGA's storage suite, litestream's
// RunWithReplicaClient): RunVaultTests checks the contract documented on
// api.Vault and keyvault.Vault, and nothing an implementation adds to it.
package keyvaulttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam/eventlog/keyvault"
)

// Vault is the method set of api.Vault, repeated here so that this package
// need not import api (whose tests use it).
type Vault interface {
	// DataKey returns the user's data key, making it when create is set.
	// Errors: keyvault.ErrKeyDestroyed when there is none.
	DataKey(ctx context.Context, realm, user string, create bool) ([]byte, error)
	// Pepper returns the realm's blind-index pepper, making it on first use.
	Pepper(ctx context.Context, realm string) ([]byte, error)
	// Destroy purges the user's data key; a missing key is not an error.
	Destroy(ctx context.Context, realm, user string) error
}

// KeySize is the length of data keys and peppers: 256 bits.
const KeySize = 32

// RunVaultTests runs the Vault conformance suite, each case on a fresh,
// empty vault from open:
//
//   - DataKey with create makes a KeySize-byte key once and returns the
//     same key after (with or without create), distinct per user and per
//     realm;
//   - DataKey without create for a key never made fails with an error
//     wrapping keyvault.ErrKeyDestroyed, and makes nothing;
//   - after Destroy, DataKey without create fails with ErrKeyDestroyed and
//     other users' keys are untouched; DataKey with create then makes a new
//     key, not the destroyed one;
//   - Destroy of a missing key, or twice, is not an error;
//   - Pepper returns the same KeySize bytes each time, different per realm
//     and different from any data key;
//   - concurrent DataKey(create) calls for one user all get the same key,
//     and concurrent Pepper calls for one realm the same pepper (run it
//     under -race).
func RunVaultTests(t *testing.T, open func(t *testing.T) Vault) {
	t.Run("DataKey_Create", func(t *testing.T) {
		ctx := testContext(t)
		v := open(t)
		k := mustDataKey(t, v, "r1", "u1", true)
		if again := mustDataKey(t, v, "r1", "u1", true); !bytes.Equal(again, k) {
			t.Errorf("DataKey(create) again: got %x, want the first %x", again, k)
		}
		if again := mustDataKey(t, v, "r1", "u1", false); !bytes.Equal(again, k) {
			t.Errorf("DataKey without create: got %x, want the made %x", again, k)
		}
		other := mustDataKey(t, v, "r1", "u2", true)
		otherRealm := mustDataKey(t, v, "r2", "u1", true)
		if bytes.Equal(other, k) || bytes.Equal(otherRealm, k) || bytes.Equal(other, otherRealm) {
			t.Errorf("keys of r1/u1, r1/u2, r2/u1 are not distinct: %x %x %x", k, other, otherRealm)
		}
		if _, err := v.DataKey(ctx, "r2", "u2", false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
			t.Errorf("DataKey r2/u2 without create: got %v, want ErrKeyDestroyed", err)
		}
	})

	t.Run("DataKey_Missing", func(t *testing.T) {
		ctx := testContext(t)
		v := open(t)
		for range 2 { // the first miss makes nothing
			if k, err := v.DataKey(ctx, "r1", "nobody", false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
				t.Fatalf("DataKey of a missing key without create: got %x (%v), want ErrKeyDestroyed", k, err)
			}
		}
	})

	t.Run("Destroy", func(t *testing.T) {
		ctx := testContext(t)
		v := open(t)
		k := mustDataKey(t, v, "r1", "u1", true)
		kept := mustDataKey(t, v, "r1", "u2", true)
		if err := v.Destroy(ctx, "r1", "u1"); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if got, err := v.DataKey(ctx, "r1", "u1", false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
			t.Fatalf("DataKey after Destroy: got %x (%v), want ErrKeyDestroyed", got, err)
		}
		if got := mustDataKey(t, v, "r1", "u2", false); !bytes.Equal(got, kept) {
			t.Errorf("another user's key after Destroy: got %x, want %x", got, kept)
		}
		if err := v.Destroy(ctx, "r1", "u1"); err != nil {
			t.Errorf("Destroy again: %v", err)
		}
		fresh := mustDataKey(t, v, "r1", "u1", true)
		if bytes.Equal(fresh, k) {
			t.Errorf("DataKey(create) after Destroy: got the destroyed key back")
		}
		if got := mustDataKey(t, v, "r1", "u1", false); !bytes.Equal(got, fresh) {
			t.Errorf("DataKey after re-creating: got %x, want %x", got, fresh)
		}
	})

	t.Run("Destroy_Missing", func(t *testing.T) {
		ctx := testContext(t)
		v := open(t)
		if err := v.Destroy(ctx, "r1", "never-made"); err != nil {
			t.Errorf("Destroy of a missing key: %v", err)
		}
		if _, err := v.DataKey(ctx, "r1", "never-made", false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
			t.Errorf("DataKey after Destroy of a missing key: got %v, want ErrKeyDestroyed", err)
		}
	})

	t.Run("Pepper", func(t *testing.T) {
		v := open(t)
		p1 := mustPepper(t, v, "r1")
		if again := mustPepper(t, v, "r1"); !bytes.Equal(again, p1) {
			t.Errorf("Pepper again: got %x, want the first %x", again, p1)
		}
		p2 := mustPepper(t, v, "r2")
		if bytes.Equal(p1, p2) {
			t.Errorf("peppers of r1 and r2 are the same: %x", p1)
		}
		if k := mustDataKey(t, v, "r1", "u1", true); bytes.Equal(k, p1) {
			t.Errorf("a data key of r1 equals its pepper")
		}
		if again := mustPepper(t, v, "r1"); !bytes.Equal(again, p1) {
			t.Errorf("Pepper after a data key was made: got %x, want %x", again, p1)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		ctx := testContext(t)
		v := open(t)
		const n = 16
		keys := make([][]byte, n)
		peppers := make([][]byte, n)
		errs := make(chan error, 2*n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				k, err := v.DataKey(ctx, "r1", "u1", true)
				if err != nil {
					errs <- fmt.Errorf("DataKey(create) %d: %w", i, err)
				}
				keys[i] = k
			})
			wg.Go(func() {
				<-start
				p, err := v.Pepper(ctx, "r1")
				if err != nil {
					errs <- fmt.Errorf("pepper %d: %w", i, err)
				}
				peppers[i] = p
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
		want := mustDataKey(t, v, "r1", "u1", false)
		wantPepper := mustPepper(t, v, "r1")
		for i := range n {
			if !bytes.Equal(keys[i], want) {
				t.Errorf("concurrent DataKey(create) %d: got %x, want the stored %x", i, keys[i], want)
			}
			if !bytes.Equal(peppers[i], wantPepper) {
				t.Errorf("concurrent Pepper %d: got %x, want the stored %x", i, peppers[i], wantPepper)
			}
		}
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustDataKey(t *testing.T, v Vault, realm, user string, create bool) []byte {
	t.Helper()
	k, err := v.DataKey(testContext(t), realm, user, create)
	if err != nil {
		t.Fatalf("DataKey %s/%s (create %t): %v", realm, user, create, err)
	}
	if len(k) != KeySize {
		t.Fatalf("DataKey %s/%s: got %d bytes, want %d", realm, user, len(k), KeySize)
	}
	return k
}

func mustPepper(t *testing.T, v Vault, realm string) []byte {
	t.Helper()
	p, err := v.Pepper(testContext(t), realm)
	if err != nil {
		t.Fatalf("Pepper %s: %v", realm, err)
	}
	if len(p) != KeySize {
		t.Fatalf("Pepper %s: got %d bytes, want %d", realm, len(p), KeySize)
	}
	return p
}
