package iam_test

import (
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// TestRefreshFamily: a code with offline_access starts a family; each
// rotation retires the token used; a retired token ends the family (the
// newest token then fails too); another client's token, an expired family,
// a password change and a deactivation are refused or end it.
func TestRefreshFamily(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	start := func(t *testing.T, scope string) (*world, []iam.Event) {
		w := newWorld(t)
		w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
		w.do("", iam.CreateApp{ID: "a", Name: "A", RedirectURIs: []string{"https://a.example/cb"}})
		w.do("", iam.RecordSignIn{User: "u", PasswordHash: argon, Success: true, At: t0, MaxFailures: 5, LockoutPeriod: time.Minute,
			Code: &iam.CodeGrant{CodeHash: iam.HashSecret("code"), Max: 3, Code: iam.AuthCode{Client: "a", RedirectURI: "https://a.example/cb",
				Challenge: challenge(verifier), ExpiresAt: t0.Add(time.Minute), Scope: scope, Nonce: "n-1", AuthTime: t0}}})
		evs := w.do("", iam.RedeemAuthCode{CodeHash: iam.HashSecret("code"), Client: "a", RedirectURI: "https://a.example/cb", Verifier: verifier, At: t0.Add(time.Second),
			Refresh: &iam.RefreshGrant{Family: "f", TokenHash: iam.HashSecret("r0"), ExpiresAt: t0.Add(time.Hour)}})
		return w, evs
	}
	rotate := func(w *world, old, next, client string, at time.Time) ([]iam.Event, error) {
		return w.try("", iam.RotateRefreshToken{TokenHash: iam.HashSecret(old), NewHash: iam.HashSecret(next), Client: client, At: at})
	}
	wantRotated := func(t *testing.T, evs []iam.Event, err error) {
		t.Helper()
		if err != nil || len(evs) != 1 || evs[0].EventType() != "RefreshTokenRotated" {
			t.Fatalf("rotate: got %v %v, want RefreshTokenRotated", evs, err)
		}
	}
	wantRefused := func(t *testing.T, what string, evs []iam.Event, err error) {
		t.Helper()
		if iam.ErrorField(err) != iam.FieldRefreshTokenErr {
			t.Fatalf("%s: got %v %v, want a refresh_token error", what, evs, err)
		}
	}

	t.Run("without offline_access no family", func(t *testing.T) {
		w, evs := start(t, "openid")
		if len(evs) != 1 || len(w.s.Identity(realm, "u").SignInState().RefreshFamilies) != 0 {
			t.Fatalf("redeem: got %v, want AuthCodeRedeemed alone", evs)
		}
		if r := evs[0].(iam.AuthCodeRedeemed); r.Nonce != "n-1" || r.Scope != "openid" || !r.AuthTime.Equal(t0) {
			t.Fatalf("redeemed: got %+v, want the code's nonce, scope and auth time", r)
		}
	})
	t.Run("rotation and reuse", func(t *testing.T) {
		w, evs := start(t, "openid offline_access")
		if len(evs) != 2 || evs[1].EventType() != "RefreshFamilyStarted" {
			t.Fatalf("redeem: got %v, want a family started", evs)
		}
		evs, err := rotate(w, "r0", "r1", "a", t0.Add(2*time.Second))
		wantRotated(t, evs, err)
		evs, err = rotate(w, "r1", "r2", "a", t0.Add(3*time.Second))
		wantRotated(t, evs, err)
		evs, err = rotate(w, "r0", "rx", "a", t0.Add(4*time.Second))
		if err != nil || len(evs) != 1 || evs[0].EventType() != "RefreshFamilyRevoked" {
			t.Fatalf("replay of r0: got %v %v, want RefreshFamilyRevoked", evs, err)
		}
		evs, err = rotate(w, "r2", "r3", "a", t0.Add(5*time.Second))
		wantRefused(t, "newest token after the replay", evs, err)
	})
	t.Run("refusals", func(t *testing.T) {
		w, _ := start(t, "offline_access")
		evs, err := rotate(w, "r0", "r1", "b", t0.Add(2*time.Second))
		wantRefused(t, "another client", evs, err)
		evs, err = rotate(w, "nope", "r1", "a", t0.Add(2*time.Second))
		wantRefused(t, "unknown", evs, err)
		evs, err = rotate(w, "r0", "r1", "a", t0.Add(time.Hour))
		wantRefused(t, "expired", evs, err)
		evs, err = rotate(w, "r0", "r1", "a", t0.Add(2*time.Second))
		wantRotated(t, evs, err) // none of the refusals ended the family
	})
	t.Run("password change ends the family", func(t *testing.T) {
		w, _ := start(t, "offline_access")
		w.do("", iam.ChangePassword{User: "u", OldHash: argon, NewHash: argon + "x", At: t0.Add(2 * time.Second)})
		evs, err := rotate(w, "r0", "r1", "a", t0.Add(3*time.Second))
		wantRefused(t, "after a password change", evs, err)
	})
	t.Run("deactivation ends the family", func(t *testing.T) {
		w, _ := start(t, "offline_access")
		w.do("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated})
		w.do("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusActive})
		evs, err := rotate(w, "r0", "r1", "a", t0.Add(3*time.Second))
		wantRefused(t, "after a deactivation (and reactivation)", evs, err)
	})
	t.Run("used hashes are bounded", func(t *testing.T) {
		w, _ := start(t, "offline_access")
		prev := "r0"
		for i := range iam.MaxUsedRefreshTokens + 5 {
			next := "r" + string(rune('A'+i))
			evs, err := rotate(w, prev, next, "a", t0.Add(time.Duration(2+i)*time.Second))
			wantRotated(t, evs, err)
			prev = next
		}
		if f := w.s.Identity(realm, "u").SignInState().RefreshFamilies["f"]; len(f.Used) != iam.MaxUsedRefreshTokens {
			t.Fatalf("used hashes kept: got %d, want %d", len(f.Used), iam.MaxUsedRefreshTokens)
		}
	})
}
