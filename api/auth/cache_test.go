package auth_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/iam-project/iam/api/auth"
)

func mustHash(t testing.TB, secret string) string {
	t.Helper()
	phc, err := auth.Hash(secret, auth.LowCostHashParams())
	if err != nil {
		t.Fatal(err)
	}
	return phc
}

func TestVerifyCache_HitMiss(t *testing.T) {
	c := auth.NewVerifyCache(10)
	phc := mustHash(t, "key")
	steps := []struct {
		secret, phc      string
		want             bool
		hits, misses, ln int
	}{
		{"key", phc, true, 0, 1, 1},                // miss, computed, cached
		{"key", phc, true, 1, 1, 1},                // hit
		{"wrong", phc, false, 1, 2, 1},             // miss, not cached
		{"wrong", phc, false, 1, 3, 1},             // still a miss
		{"key", mustHash(t, "key"), true, 1, 4, 2}, // same secret, new hash: miss
	}
	for i, s := range steps {
		ok, err := c.Verify(s.secret, s.phc)
		if err != nil || ok != s.want {
			t.Fatalf("step %d: got %v, %v; want %v, nil", i, ok, err, s.want)
		}
		hits, misses := c.Stats()
		if int(hits) != s.hits || int(misses) != s.misses || c.Len() != s.ln {
			t.Fatalf("step %d: got hits=%d misses=%d len=%d, want %d %d %d", i, hits, misses, c.Len(), s.hits, s.misses, s.ln)
		}
	}
	if ok, err := c.Verify("key", "$argon2id$garbage"); ok || !errors.Is(err, auth.ErrMalformedHash) {
		t.Fatalf("malformed: got %v, %v; want false, ErrMalformedHash", ok, err)
	}
	c.Purge()
	if c.Len() != 0 {
		t.Fatalf("after Purge: got len %d, want 0", c.Len())
	}
}

func TestVerifyCache_EvictsLeastRecentlyUsed(t *testing.T) {
	c := auth.NewVerifyCache(2)
	a, b, d := mustHash(t, "a"), mustHash(t, "b"), mustHash(t, "d")
	verify := func(secret, phc string) (hit bool) {
		t.Helper()
		h0, _ := c.Stats()
		if ok, err := c.Verify(secret, phc); !ok || err != nil {
			t.Fatalf("Verify(%q): got %v, %v; want true, nil", secret, ok, err)
		}
		h1, _ := c.Stats()
		return h1 > h0
	}
	verify("a", a)
	verify("b", b)
	if !verify("a", a) { // a is now the most recent
		t.Fatal("a: got miss, want hit")
	}
	verify("d", d) // evicts b
	if c.Len() != 2 {
		t.Fatalf("got len %d, want 2", c.Len())
	}
	if !verify("a", a) {
		t.Error("a: got miss, want hit")
	}
	if verify("b", b) {
		t.Error("b: got hit, want miss (evicted)")
	}
}

func TestVerifyCache_Concurrent(t *testing.T) {
	c := auth.NewVerifyCache(0)
	phcs := make([]string, 4)
	for i := range phcs {
		phcs[i] = mustHash(t, fmt.Sprint("k", i))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				n := (g + i) % len(phcs)
				secret := fmt.Sprint("k", n)
				if i%7 == 0 {
					secret = "wrong"
				}
				ok, err := c.Verify(secret, phcs[n])
				if err != nil || ok != (secret != "wrong") {
					t.Errorf("Verify(%q): got %v, %v", secret, ok, err)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() != len(phcs) {
		t.Errorf("got len %d, want %d", c.Len(), len(phcs))
	}
}

// TestVerifyCache_Compute: a miss is verified by Compute (the server's
// bounded argon2id), a hit is not, and Compute's error is the answer.
func TestVerifyCache_Compute(t *testing.T) {
	phc := mustHash(t, "s3cret")
	busy := errors.New("busy")
	var calls int
	fail := true
	c := auth.NewVerifyCache(10)
	c.Compute = func(secret, phc string) (bool, error) {
		calls++
		if fail {
			return false, busy
		}
		return auth.Verify(secret, phc)
	}
	if _, err := c.Verify("s3cret", phc); !errors.Is(err, busy) {
		t.Fatalf("Compute failing: got %v, want its error", err)
	}
	fail = false
	for range 3 {
		if ok, err := c.Verify("s3cret", phc); !ok || err != nil {
			t.Fatalf("got %v %v, want true", ok, err)
		}
	}
	if calls != 2 {
		t.Fatalf("got %d Compute calls, want 2 (the failure, then one miss; hits cost none)", calls)
	}
}
