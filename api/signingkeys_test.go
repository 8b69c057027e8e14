package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// tokenKID returns the kid header of a JWT.
func tokenKID(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.KID == "" {
		t.Fatalf("token header %s: got no kid (%v)", raw, err)
	}
	return h.KID
}

// TestSigningKeys_Revoke: an operator of the system realm revokes the key
// that signs the tokens; a token it signed is refused at once, a new token
// is signed by another key and works, and the key leaves the JWKS. Another
// realm's OrgAdmin may not revoke, and an unknown kid is not found.
func TestSigningKeys_Revoke(t *testing.T) {
	m := daemontest.Start(t, "")
	base := daemontest.URL(m)
	admin := daemontest.AdminClient(t, m)
	other := otherRealmAdmin(t, m)
	app := admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "svc"}).Str("id")
	cred := admin.Must(http.StatusCreated, "POST", "/v1/apps/"+app+"/credentials", nil)
	token := func() string {
		return daemontest.ClientToken(t, base, cred.Str("clientId"), cred.Str("clientSecret"), "")
	}
	svc := &daemontest.Client{TB: t, Base: base, Token: token()}
	kid := tokenKID(t, svc.Token)
	svc.Must(http.StatusOK, "GET", "/v1/roles", nil)

	wantProblem(t, other.Do("DELETE", "/v1/signingKeys/"+kid, nil), http.StatusForbidden, "permission_denied", "")
	wantProblem(t, admin.Do("DELETE", "/v1/signingKeys/no-such-kid", nil), http.StatusNotFound, "not_found", "")
	svc.Must(http.StatusOK, "GET", "/v1/roles", nil)

	ct := admin.Must(http.StatusOK, "DELETE", "/v1/signingKeys/"+kid, nil).Str("consistencyToken")
	refused := svc.Do("GET", "/v1/roles", nil, "Consistency-Token", ct)
	wantProblem(t, refused, http.StatusUnauthorized, "unauthenticated", "")
	if got := refused.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate: got %q, want a Bearer invalid_token challenge", got)
	}

	// Signing goes on with another key; the admin's own token was signed
	// by the revoked key too, so it takes a new one.
	svc.Token = token()
	if got := tokenKID(t, svc.Token); got == kid {
		t.Fatalf("kid of a new token: got the revoked %s, want another", got)
	}
	svc.Must(http.StatusOK, "GET", "/v1/roles", nil, "Consistency-Token", ct)
	admin = daemontest.AdminClient(t, m)
	if jwks := admin.Must(http.StatusOK, "GET", "/.well-known/jwks.json", nil); strings.Contains(string(jwks.Raw), kid) {
		t.Errorf("JWKS after the revocation: got %s, want no %s", jwks.Raw, kid)
	}
	if keys := admin.Must(http.StatusOK, "GET", "/v1/signingKeys", nil); strings.Contains(string(keys.Raw), kid) {
		t.Errorf("signing keys after the revocation: got %s, want no %s", keys.Raw, kid)
	}
	// A repeat changes nothing and succeeds: the revocation stands.
	admin.Must(http.StatusOK, "DELETE", "/v1/signingKeys/"+kid, nil)
}
