package iam_test

import (
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// TestDecide_RevokeSigningKey: only the system realm revokes signing keys;
// a revocation is recorded once, and its first time stands.
func TestDecide_RevokeSigningKey(t *testing.T) {
	s := iam.NewState()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	decide := func(realm string, cmd iam.Command) ([]iam.Event, error) {
		t.Helper()
		evs, err := iam.Decide(s, iam.Request{Realm: realm, At: at, Command: cmd})
		if err == nil {
			if err := s.ApplyEvents(evs, nil); err != nil {
				t.Fatal(err)
			}
		}
		return evs, err
	}
	for _, r := range []string{"sys", "other"} {
		if _, err := decide("", iam.CreateRealm{ID: r, Name: r}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		realm  string
		cmd    iam.RevokeSigningKey
		code   string
		events int
	}{
		{"another realm", "other", iam.RevokeSigningKey{KID: "k1", At: at}, iam.EPermissionDenied, 0},
		{"no kid", "sys", iam.RevokeSigningKey{At: at}, iam.EInvalid, 0},
		{"the system realm", "sys", iam.RevokeSigningKey{KID: "k1", At: at}, "", 1},
		{"again", "sys", iam.RevokeSigningKey{KID: "k1", At: at.Add(time.Hour)}, "", 0},
	}
	for _, tt := range tests {
		evs, err := decide(tt.realm, tt.cmd)
		if got := iam.ErrorCode(err); (err != nil || tt.code != "") && got != tt.code {
			t.Errorf("%s: got %v, want code %q", tt.name, err, tt.code)
		}
		if len(evs) != tt.events {
			t.Errorf("%s: got %d events, want %d", tt.name, len(evs), tt.events)
		}
	}
	if got, ok := s.RevokedKey("k1"); !ok || got != (iam.RevokedKey{Realm: "sys", At: at}) {
		t.Fatalf("RevokedKey: got %+v, %v, want revoked by sys at %v", got, ok, at)
	}
}
