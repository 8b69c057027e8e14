package iam

import (
	"testing"
	"time"
)

// TestSignInState_NoneWhileZero: an identity holds a sign-in state only
// while it has one, so that the many that never sign in badly pay nothing
// for it and identities compare alike however they got there; a copy of
// the identity has its own.
func TestSignInState_NoneWhileZero(t *testing.T) {
	in := InRealm{Realm: "r"}
	at := time.Unix(1_700_000_000, 0).UTC()
	s := NewState()
	apply := func(evs ...Event) {
		t.Helper()
		if err := s.ApplyEvents(evs, nil); err != nil {
			t.Fatal(err)
		}
	}
	apply(RealmCreated{InRealm: in, Name: "R"}, IdentityCreated{InRealm: in, ID: "u", Kind: KindUser, Email: "u@example.com", Name: "U", PasswordHash: "h"})
	u := func() *Identity { return s.Realm("r").Identities.Get("u") }
	if u().signIn != nil {
		t.Fatal("a new identity holds a sign-in state")
	}
	apply(SignInFailed{InRealm: in, User: "u", At: at}, SignInFailed{InRealm: in, User: "u", At: at})
	if got := u().SignInState().FailedSignIns; got != 2 {
		t.Fatalf("failures: %d, want 2", got)
	}
	apply(SignInSucceeded{InRealm: in, User: "u", At: at})
	if u().signIn != nil {
		t.Fatalf("after a success the identity still holds %+v", *u().signIn)
	}
	apply(PasswordResetRequested{InRealm: in, User: "u", TokenHash: "t", ExpiresAt: at.Add(time.Hour)})
	apply(TokensRevoked{InRealm: in, Identity: "u", Before: at})
	c := u().clone()
	if c.signIn == u().signIn || c.SignInState().ResetTokenHash != "t" || !c.SignInState().TokensNotBefore.Equal(at) {
		t.Fatalf("the copy's sign-in state: %+v at %p, the original's at %p", c.SignInState(), c.signIn, u().signIn)
	}
	apply(PasswordChanged{InRealm: in, User: "u", PasswordHash: "h2", At: at.Add(-time.Second)})
	if st := u().SignInState(); st.ResetTokenHash != "" || !st.TokensNotBefore.Equal(at) {
		t.Fatalf("after a password change: %+v, want the reset token gone and the later revocation kept", st)
	}
}

// TestAppState_OnlyApps: a user holds no app state, an app holds one from
// its creation however little it has (so that an app replayed and one
// loaded from rows compare alike), and a copy of an app has its own.
func TestAppState_OnlyApps(t *testing.T) {
	in := InRealm{Realm: "r"}
	s := NewState()
	if err := s.ApplyEvents([]Event{
		RealmCreated{InRealm: in, Name: "R"},
		IdentityCreated{InRealm: in, ID: "u", Kind: KindUser, Email: "u@example.com", Name: "U", PasswordHash: "h"},
		IdentityCreated{InRealm: in, ID: "bare", Kind: KindApp, Name: "Bare"},
		IdentityCreated{InRealm: in, ID: "a", Kind: KindApp, Name: "A", RedirectURIs: []string{"https://a.example.com/cb"}, Owner: "u"},
		CredentialAdded{InRealm: in, App: "a", CredentialID: "c", ClientID: "client", SecretHash: "s"},
		AppShared{InRealm: in, App: "a", With: "u"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	r := s.Realm("r")
	if u := r.Identities.Get("u"); u.app != nil {
		t.Fatalf("a user holds an app state: %+v", *u.app)
	}
	if bare := r.Identities.Get("bare"); bare.app == nil {
		t.Fatal("an app created with nothing but a name holds no app state")
	}
	a := r.Identities.Get("a")
	if got := a.AppState(); got.Owner != "u" || len(got.RedirectURIs) != 1 || got.Credentials["c"].ClientID != "client" || !got.Sharees.Has("u") {
		t.Fatalf("the app's state: %+v", got)
	}
	c := a.clone()
	if c.app == a.app {
		t.Fatal("a copy of the app shares its app state")
	}
	c.ownApp().Sharees.remove("u")
	delete(c.ownApp().Credentials, "c")
	if !a.AppState().Sharees.Has("u") || a.AppState().Credentials["c"].ClientID != "client" {
		t.Fatal("a change to the copy's app state reached the original")
	}
}
