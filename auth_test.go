package iam_test

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func signIn(w *world, user string, ok bool, at time.Time) ([]iam.Event, error) {
	return w.try("", iam.RecordSignIn{User: user, PasswordHash: argon, Success: ok, At: at, MaxFailures: 5, LockoutPeriod: time.Minute})
}

func TestRecordSignIn_Lockout(t *testing.T) {
	w := newWorld(t)
	w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
	t0 := time.Unix(1_700_000_000, 0).UTC()
	for i := range 5 {
		if _, err := signIn(w, "u", false, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("failure %d: got %v, want it recorded", i+1, err)
		}
	}
	_, err := signIn(w, "u", true, t0.Add(10*time.Second))
	if iam.ErrorField(err) != iam.FieldAccountLocked || !strings.Contains(iam.ErrorMessage(err), "locked") {
		t.Fatalf("6th sign-in with the right password: got %v, want the account locked", err)
	}
	if _, err := signIn(w, "u", true, t0.Add(5*time.Second+time.Minute)); err != nil {
		t.Fatalf("sign-in after the period: got %v, want success", err)
	}
	if u := w.s.Identity(realm, "u").SignInState(); u.FailedSignIns != 0 || !u.LockedUntil.IsZero() {
		t.Fatalf("after success: got %d failures, lock %v, want none", u.FailedSignIns, u.LockedUntil)
	}
	// A success in between resets the count: 4 + success + 4 is no lock.
	for round := range 2 {
		for i := range 4 {
			signIn(w, "u", false, t0.Add(time.Hour+time.Duration(round*10+i)*time.Second))
		}
		if _, err := signIn(w, "u", true, t0.Add(time.Hour+time.Duration(round*10+5)*time.Second)); err != nil {
			t.Fatalf("round %d: got %v, want success", round, err)
		}
	}
}

// TestRecordSignIn_ReactivatesSelfDeactivatedUser: a user who deactivated
// itself reactivates by signing in; one deactivated by an administrator
// does not, whoever holds the password.
func TestRecordSignIn_ReactivatesSelfDeactivatedUser(t *testing.T) {
	w := newWorld(t)
	w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
	w.do("u", iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated})
	if !w.s.Identity(realm, "u").SelfDeactivated {
		t.Fatal("self-deactivation: got SelfDeactivated false, want true")
	}
	if _, err := signIn(w, "u", true, time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	if got := w.s.Identity(realm, "u").Status; got != iam.StatusActive {
		t.Fatalf("status: got %s, want active", got)
	}

	w.do("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated})
	if _, err := signIn(w, "u", true, time.Unix(1_700_000_100, 0)); iam.ErrorCode(err) != iam.EUnauthenticated {
		t.Fatalf("sign-in after an administrator's deactivation: got %v, want unauthenticated", err)
	}
	if got := w.s.Identity(realm, "u").Status; got != iam.StatusDeactivated {
		t.Fatalf("status: got %s, want deactivated", got)
	}
}

func TestAuthCodes(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	setup := func(t *testing.T) *world {
		w := newWorld(t)
		w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
		w.do("", iam.CreateApp{ID: "a", Name: "A", RedirectURIs: []string{"https://a.example/cb"}})
		return w
	}
	issue := func(w *world, code string, at time.Time) error {
		_, err := w.try("", iam.RecordSignIn{User: "u", PasswordHash: argon, Success: true, At: at, MaxFailures: 5, LockoutPeriod: time.Minute,
			Code: &iam.CodeGrant{CodeHash: iam.HashSecret(code), Max: 3, Code: iam.AuthCode{Client: "a", RedirectURI: "https://a.example/cb", Challenge: challenge(verifier), ExpiresAt: at.Add(time.Minute)}}})
		return err
	}
	redeem := func(w *world, code, client, redirect, v string, at time.Time) ([]iam.Event, error) {
		return w.try("", iam.RedeemAuthCode{CodeHash: iam.HashSecret(code), Client: client, RedirectURI: redirect, Verifier: v, At: at})
	}
	t.Run("limit and expiry", func(t *testing.T) {
		w := setup(t)
		for i := range 3 {
			if err := issue(w, "c"+string(rune('0'+i)), t0); err != nil {
				t.Fatal(err)
			}
		}
		err := issue(w, "c3", t0.Add(time.Second))
		if iam.ErrorCode(err) != iam.ELimitExceeded || !strings.Contains(iam.ErrorMessage(err), "Exceeded the maximum number of authorization codes") {
			t.Fatalf("4th code: got %v, want the outstanding-code limit", err)
		}
		if err := issue(w, "c4", t0.Add(time.Minute)); err != nil {
			t.Fatalf("after the codes expired: got %v, want a code", err)
		}
		if got := len(w.s.Identity(realm, "u").SignInState().AuthCodes); got != 1 {
			t.Fatalf("codes held: got %d, want the expired ones forgotten", got)
		}
	})
	t.Run("bindings", func(t *testing.T) {
		w := setup(t)
		issue(w, "c", t0)
		for _, tc := range []struct{ name, client, redirect, verifier string }{
			{"other client", "b", "https://a.example/cb", verifier},
			{"other redirect", "a", "https://a.example/other", verifier},
			{"wrong verifier", "a", "https://a.example/cb", strings.Repeat("x", 43)},
			{"no verifier", "a", "https://a.example/cb", ""},
		} {
			if _, err := redeem(w, "c", tc.client, tc.redirect, tc.verifier, t0.Add(time.Second)); iam.ErrorField(err) != iam.FieldAuthorizationCodeErr {
				t.Errorf("%s: got %v, want a code error", tc.name, err)
			}
		}
		if _, err := redeem(w, "c", "a", "https://a.example/cb", verifier, t0.Add(time.Minute)); err == nil {
			t.Errorf("expired: got success, want an error")
		}
		evs, err := redeem(w, "c", "a", "https://a.example/cb", verifier, t0.Add(time.Second))
		if err != nil || len(evs) != 1 || evs[0].EventType() != "AuthCodeRedeemed" {
			t.Fatalf("redeem: got %v %v, want AuthCodeRedeemed", evs, err)
		}
		evs, err = redeem(w, "c", "a", "https://a.example/cb", verifier, t0.Add(2*time.Second))
		if err != nil || len(evs) != 1 || evs[0].EventType() != "TokensRevoked" {
			t.Fatalf("reuse: got %v %v, want TokensRevoked", evs, err)
		}
		if got := w.s.Identity(realm, "u").SignInState().TokensNotBefore; !got.Equal(t0.Add(2 * time.Second)) {
			t.Fatalf("tokens not before: got %v", got)
		}
	})
}

func TestResetPassword_SingleUse(t *testing.T) {
	w := newWorld(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
	w.do("", iam.RequestPasswordReset{User: "u", TokenHash: "h1", ExpiresAt: t0.Add(time.Minute)})
	const other = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$b3RoZXI"
	if _, err := w.try("", iam.ResetPassword{TokenHash: "h1", NewHash: other, At: t0.Add(2 * time.Minute)}); err == nil {
		t.Fatal("expired token: got success")
	}
	w.do("", iam.ResetPassword{TokenHash: "h1", NewHash: other, At: t0})
	if w.s.Identity(realm, "u").PasswordHash != other {
		t.Fatal("password not changed")
	}
	if _, err := w.try("", iam.ResetPassword{TokenHash: "h1", NewHash: argon, At: t0}); err == nil {
		t.Fatal("second use: got success")
	}
}

func TestInvitation_Accept(t *testing.T) {
	w := newWorld(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	w.group("g")
	inv := iam.Invitation{UserID: "u-new", EmailIndex: "bi1", Sealed: []byte("s"), Roles: []string{iam.RoleOrgInviter}, Groups: []string{"g"}, TokenHash: "t1", ExpiresAt: t0.Add(time.Minute)}
	six := append([]string(nil), "g", "g", "g", "g", "g", "g")
	if _, err := w.try("", iam.CreateInvitation{ID: "i1", Invitation: iam.Invitation{UserID: "x", EmailIndex: "b", TokenHash: "t", ExpiresAt: t0, Groups: six}}); iam.ErrorCode(err) != iam.ELimitExceeded {
		t.Fatalf("6 groups: got %v, want limit_exceeded", err)
	}
	w.do("", iam.CreateInvitation{ID: "i1", Invitation: inv})
	w.do("", iam.RenewInvitation{ID: "i1", TokenHash: "t2", ExpiresAt: t0.Add(time.Hour)})
	if _, err := w.try("", iam.AcceptInvitation{TokenHash: "t1", Sealed: []byte("s2"), PasswordHash: argon, At: t0}); err == nil {
		t.Fatal("old token after renewal: got success")
	}
	w.do("", iam.AcceptInvitation{TokenHash: "t2", Sealed: []byte("s2"), PasswordHash: argon, At: t0})
	u := w.s.Identity(realm, "u-new")
	if !u.Roles.Has(iam.RoleOrgInviter) || w.s.UserByEmailIndex(realm, "bi1") != u {
		t.Fatalf("accepted user: got %+v", u)
	}
	if !u.Groups.Has("g") {
		t.Fatalf("groups: got %v, want g", u.Groups.Sorted())
	}
}

// TestSetIdentityStatus_DeactivationRevokesTokens: a token from before a
// deactivation stays dead after the identity is reactivated.
func TestSetIdentityStatus_DeactivationRevokesTokens(t *testing.T) {
	w := newWorld(t)
	w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
	t0 := time.Unix(1_700_000_000, 0).UTC()
	w.do("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated, At: t0})
	w.do("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusActive, At: t0.Add(time.Minute)})
	if got := w.s.Identity(realm, "u").SignInState().TokensNotBefore; !got.Equal(t0) {
		t.Fatalf("TokensNotBefore after deactivation and reactivation: got %v, want %v", got, t0)
	}
}

// TestPasswordChanged_RevokesTokens: a password change or reset ends the
// user's tokens issued before it.
func TestPasswordChanged_RevokesTokens(t *testing.T) {
	const other = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$b3RoZXI"
	t0 := time.Unix(1_700_000_000, 0).UTC()
	for name, change := range map[string]func(w *world){
		"change": func(w *world) {
			w.do("", iam.ChangePassword{User: "u", OldHash: argon, NewHash: other, At: t0})
		},
		"reset": func(w *world) {
			w.do("", iam.RequestPasswordReset{User: "u", TokenHash: "h1", ExpiresAt: t0.Add(time.Minute)})
			w.do("", iam.ResetPassword{TokenHash: "h1", NewHash: other, At: t0})
		},
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
			change(w)
			if got := w.s.Identity(realm, "u").SignInState().TokensNotBefore; !got.Equal(t0) {
				t.Fatalf("TokensNotBefore: got %v, want %v", got, t0)
			}
		})
	}
}

// TestChangePersonalData: a user replaces its own sealed data; the old
// blind index no longer finds it, the new one does; another user's email is
// a conflict; another user may not without manageUser.
func TestChangePersonalData(t *testing.T) {
	w := newWorld(t)
	w.do("", iam.CreateSealedUser{ID: "u", EmailIndex: "bi-old", Sealed: []byte("s1"), PasswordHash: argon})
	w.do("", iam.CreateSealedUser{ID: "v", EmailIndex: "bi-v", Sealed: []byte("s1"), PasswordHash: argon})
	w.user("plain") // created before sealing: plain email and name

	_, err := w.try("v", iam.ChangePersonalData{User: "u", EmailIndex: "bi-x", Sealed: []byte("s"), Was: []byte("s1")})
	wantError(t, err, iam.EPermissionDenied, "")
	_, err = w.try("u", iam.ChangePersonalData{User: "u", EmailIndex: "bi-v", Sealed: []byte("s"), Was: []byte("s1")})
	wantError(t, err, iam.EConflict, "email")
	// Made from data that is no longer the user's: a concurrent edit.
	_, err = w.try("u", iam.ChangePersonalData{User: "u", EmailIndex: "bi-x", Sealed: []byte("s"), Was: []byte("s0")})
	wantError(t, err, iam.EConflict, "")

	w.do("u", iam.ChangePersonalData{User: "u", EmailIndex: "bi-new", Sealed: []byte("s2"), Was: []byte("s1")})
	if w.s.UserByEmailIndex(realm, "bi-old") != nil || w.s.UserByEmailIndex(realm, "bi-new") != w.s.Identity(realm, "u") {
		t.Fatal("blind index: the old one still finds the user or the new one does not")
	}
	if got := string(w.s.Identity(realm, "u").Sealed); got != "s2" {
		t.Fatalf("sealed: got %q, want s2", got)
	}
	// The same email again (a name change) is no conflict with itself.
	w.do("u", iam.ChangePersonalData{User: "u", EmailIndex: "bi-new", Sealed: []byte("s3"), Was: []byte("s2")})

	w.do("plain", iam.ChangePersonalData{User: "plain", EmailIndex: "bi-plain", Sealed: []byte("s")})
	if p := w.s.Identity(realm, "plain"); p.Email != "" || p.Name != "" || w.s.UserByEmail(realm, "plain@example.com") != nil {
		t.Fatalf("a plain user's email and name stay in the state after sealing: %+v", p)
	}
	w.app("a")
	_, err = w.try("a", iam.ChangePersonalData{User: "a", EmailIndex: "bi-a", Sealed: []byte("s"), Was: nil})
	wantError(t, err, iam.ENotFound, "id")
}

// TestDeleteIdentity_Self: a user deletes its own account without any
// permission; an app does not, nor a user another one.
func TestDeleteIdentity_Self(t *testing.T) {
	w := newWorld(t)
	w.user("u")
	w.user("v")
	w.app("a")
	_, err := w.try("v", iam.DeleteIdentity{ID: "u"})
	wantError(t, err, iam.EPermissionDenied, "")
	_, err = w.try("a", iam.DeleteIdentity{ID: "a"})
	wantError(t, err, iam.EPermissionDenied, "")
	w.do("u", iam.DeleteIdentity{ID: "u"})
	if got := w.s.Identity(realm, "u").Status; got != iam.StatusDeleted {
		t.Fatalf("status: got %s, want deleted", got)
	}
}

// TestCreateInvitation_InviterGrantsOnlyWhatItMay: an OrgInviter invites
// with no role and no group it could not give; the refusal names which.
func TestCreateInvitation_InviterGrantsOnlyWhatItMay(t *testing.T) {
	w := newWorld(t)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	w.user("inviter")
	w.do("", iam.GrantRole{Identity: "inviter", Role: iam.RoleOrgInviter})
	w.group("g")
	inv := func(roles, groups []string) iam.CreateInvitation {
		return iam.CreateInvitation{ID: "i", Invitation: iam.Invitation{UserID: "u-new", EmailIndex: "bi", Sealed: []byte("s"),
			Roles: roles, Groups: groups, TokenHash: "t", ExpiresAt: t0.Add(time.Hour)}}
	}
	_, err := w.try("inviter", inv([]string{iam.RoleOrgAdmin}, nil))
	wantError(t, err, iam.EPermissionDenied, "roles")
	wantMessage(t, err, "role OrgAdmin")
	_, err = w.try("inviter", inv(nil, []string{"g"}))
	wantError(t, err, iam.EPermissionDenied, "groups")
	wantMessage(t, err, "group g")
	// The command cannot claim another inviter: the actor is the inviter.
	spoofed := inv([]string{iam.RoleOrgAdmin}, nil)
	spoofed.Invitation.InvitedBy = ""
	_, err = w.try("inviter", spoofed)
	wantError(t, err, iam.EPermissionDenied, "roles")

	w.do("inviter", inv(nil, nil))
	if got := w.s.Invitation(realm, "i").InvitedBy; got != "inviter" {
		t.Fatalf("invitedBy: got %q, want inviter", got)
	}
}

// TestRecordSignIn_DeactivatedIsNotLocked: an administrator's deactivation
// is refused under its own field, not the lock's (whose until is zero).
func TestRecordSignIn_DeactivatedIsNotLocked(t *testing.T) {
	w := newWorld(t)
	w.do("", iam.CreateUser{ID: "u", Email: "u@example.com", Name: "U", PasswordHash: argon})
	w.do("", iam.SetIdentityStatus{ID: "u", Status: iam.StatusDeactivated})
	_, err := signIn(w, "u", true, time.Unix(1_700_000_000, 0))
	wantError(t, err, iam.EUnauthenticated, iam.FieldAccountDeactivated)
}
