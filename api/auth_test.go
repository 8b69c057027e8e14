package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/keyvault"
)

// idpFixture is a realm with a user who has a password and an app with
// redirect URIs and client credentials.
type idpFixture struct {
	m                  *daemon.Main
	admin              *daemontest.Client
	user, email, name  string
	password           string
	app                string
	clientID, secret   string
	redirect           string
	secrets, passwords []string // every secret seen, for the raw scans
}

func newIDPFixture(t *testing.T) *idpFixture {
	t.Helper()
	m := daemontest.Start(t, "")
	f := &idpFixture{m: m, admin: daemontest.AdminClient(t, m), email: "ada@example.com", name: "Ada Lovelace", password: "correct horse battery", redirect: "http://127.0.0.1/callback"}
	f.passwords = append(f.passwords, f.password)
	f.secrets = append(f.secrets, m.Bootstrap.ClientSecret)
	f.user = f.admin.Must(201, "POST", "/v1/users", map[string]any{"email": f.email, "name": f.name, "password": f.password}).Str("id")
	f.app = f.admin.Must(201, "POST", "/v1/apps", map[string]any{"name": "Portal", "redirectUris": []string{f.redirect}}).Str("id")
	cred := f.admin.Must(201, "POST", "/v1/apps/"+f.app+"/credentials", nil)
	f.clientID, f.secret = cred.Str("clientId"), cred.Str("clientSecret")
	f.secrets = append(f.secrets, f.secret)
	return f
}

func (f *idpFixture) oauthConfig(clientID, secret string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: f.redirect,
		Endpoint: oauth2.Endpoint{AuthURL: daemontest.URL(f.m) + "/oauth2/authorize", TokenURL: daemontest.URL(f.m) + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// browser is the test "being the browser": it GETs the authorize URL, reads
// the form, posts email and password, and returns the final answer without
// following the redirect.
func browser(t *testing.T, authURL, email, password string) *http.Response {
	t.Helper()
	return browserVia(t, &http.Client{Transport: openapitest.Transport(t, nil), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, authURL, email, password)
}

// browserVia is browser through noFollow, a client that does not follow
// redirects (one bound to a source address, say).
func browserVia(t *testing.T, noFollow *http.Client, authURL, email, password string) *http.Response {
	t.Helper()
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return &http.Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(page))}
	}
	form := url.Values{"email": {email}, "password": {password}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	u, _ := url.Parse(authURL)
	resp, err = noFollow.PostForm(u.Scheme+"://"+u.Host+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// signIn runs the browser part and returns the redirect's query.
func signIn(t *testing.T, conf *oauth2.Config, email, password, verifier string) (url.Values, *http.Response) {
	t.Helper()
	resp := browser(t, conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(verifier)), email, password)
	if resp.StatusCode != http.StatusFound {
		return nil, resp
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query(), resp
}

func mustCode(t *testing.T, conf *oauth2.Config, email, password, verifier string) string {
	t.Helper()
	q, resp := signIn(t, conf, email, password, verifier)
	if q == nil || q.Get("code") == "" || q.Get("state") != "st-123" {
		t.Fatalf("sign-in: got %d %v %s, want a redirect with code and state", resp.StatusCode, q, bodyOf(resp))
	}
	return q.Get("code")
}

func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func status(c *daemontest.Client, path string) int { return c.Do("GET", path, nil).Status }

// TestOAuth_RealClients: clientcredentials gets tokens, the code flow with
// PKCE completes through the sign-in page, and go-oidc verifies tokens from
// discovery and JWKS before and after a signing-key rotation.
func TestOAuth_RealClients(t *testing.T) {
	f := newIDPFixture(t)
	ctx := context.Background()
	cc := clientcredentials.Config{ClientID: f.clientID, ClientSecret: f.secret, TokenURL: daemontest.URL(f.m) + "/oauth2/token"}
	appTok, err := cc.Token(ctx)
	if err != nil || appTok.AccessToken == "" {
		t.Fatalf("client credentials: got %v, want a token", err)
	}
	provider, err := oidc.NewProvider(ctx, daemontest.URL(f.m))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "iam", SupportedSigningAlgs: []string{"ES256"}})
	if _, err := verifier.Verify(ctx, appTok.AccessToken); err != nil {
		t.Fatalf("go-oidc verify app token: %v", err)
	}

	conf := f.oauthConfig(f.clientID, f.secret)
	pkce := oauth2.GenerateVerifier()
	code := mustCode(t, conf, f.email, f.password, pkce)
	userTok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, err := verifier.Verify(ctx, userTok.AccessToken)
	if err != nil || idt.Subject != f.user {
		t.Fatalf("go-oidc verify user token: got %v %v, want subject %s", idt, err, f.user)
	}
	me := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: userTok.AccessToken}
	got := me.Must(200, "GET", "/v1/users/"+f.user, nil)
	if got.Str("email") != f.email || got.Str("name") != f.name {
		t.Fatalf("user reads itself: got %s, want the decrypted email and name", got.Raw)
	}

	// Rotation: the new key signs, the old one still verifies.
	before := f.admin.Must(200, "GET", "/v1/signingKeys", nil)
	f.admin.Must(200, "POST", "/v1/signingKeys/rotate", nil)
	after := f.admin.Must(200, "GET", "/v1/signingKeys", nil)
	if n := len(after.Body["keys"].([]any)); n != len(before.Body["keys"].([]any))+1 {
		t.Fatalf("keys after rotation: got %d", n)
	}
	newTok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, newTok.AccessToken) == kidOf(t, appTok.AccessToken) {
		t.Fatal("after rotation: the new token has the old kid")
	}
	for name, tok := range map[string]string{"old": appTok.AccessToken, "new": newTok.AccessToken, "user": userTok.AccessToken} {
		if _, err := verifier.Verify(ctx, tok); err != nil {
			t.Errorf("go-oidc after rotation, %s token: %v", name, err)
		}
		if st := (&daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok}).Do("GET", "/v1/roles", nil).Status; st != 200 {
			t.Errorf("iam after rotation, %s token: got %d", name, st)
		}
	}
	// The keys are sealed on disk; no plaintext key file remains.
	if _, err := os.Stat(filepath.Join(f.m.Config.DataDir, "signing-keys.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plaintext signing-keys.json: got %v, want none", err)
	}
	sealed, _ := os.ReadFile(filepath.Join(f.m.Config.DataDir, "signing-keys.sealed"))
	if bytes.Contains(sealed, []byte("pkcs8")) || len(sealed) == 0 {
		t.Errorf("signing-keys.sealed: want sealed bytes")
	}
}

func kidOf(t *testing.T, tok string) string {
	h, _ := segmentsOf(t, tok)
	kid, _ := h["kid"].(string)
	return kid
}

func segmentsOf(t *testing.T, tok string) (h, p map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	for i, dst := range []*map[string]any{&h, &p} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("token segment %d: %v", i, err)
		}
	}
	return h, p
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestOAuth_Rejections: each bad token or grant gets its RFC 6749/6750 error.
func TestOAuth_Rejections(t *testing.T) {
	f := newIDPFixture(t)
	ctx := context.Background()
	base := daemontest.URL(f.m)

	t.Run("wrong secret", func(t *testing.T) {
		_, err := (&clientcredentials.Config{ClientID: f.clientID, ClientSecret: "wrong", TokenURL: base + "/oauth2/token"}).Token(ctx)
		if got := oauthErrorCode(err); got != "invalid_client" {
			t.Fatalf("got %q (%v), want invalid_client", got, err)
		}
	})

	good := daemontest.ClientToken(t, base, f.clientID, f.secret, "")
	h, p := segmentsOf(t, good)
	parts := strings.Split(good, ".")
	ks, err := auth.LoadSigningKeys(f.m.Config.DataDir, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(mod func(*auth.Claims)) string {
		now := time.Now()
		c := auth.Claims{Issuer: base, Subject: f.app, Audience: "iam", Realm: f.m.Bootstrap.Realm, ID: "t-x", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Kind: auth.KindApp}
		mod(&c)
		tok, err := ks.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	jwks := struct {
		Keys []map[string]string `json:"keys"`
	}{}
	resp, _ := openapitest.Client(t).Get(base + "/.well-known/jwks.json")
	_ = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	pub, _ := json.Marshal(jwks.Keys[0])
	hsHeader := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": h["kid"]})
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(hsHeader + "." + parts[1]))
	other := daemontest.Start(t, "")
	otherTok := daemontest.ClientToken(t, daemontest.URL(other), other.Bootstrap.ClientID, other.Bootstrap.ClientSecret, "")
	sig := []byte(parts[2])
	sig[10] ^= 1
	if sig[10] == '.' {
		sig[10] = 'A'
	}

	for name, tok := range map[string]string{
		"expired": sign(func(c *auth.Claims) {
			c.IssuedAt, c.ExpiresAt = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
		}),
		"another realm":      sign(func(c *auth.Claims) { c.Realm = "other-realm" }),
		"another server":     otherTok,
		"alg none":           b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".",
		"HS256 with the key": hsHeader + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)),
		"tampered signature": parts[0] + "." + parts[1] + "." + string(sig),
		"tampered payload":   parts[0] + "." + b64(map[string]any{"sub": p["sub"], "realm": "x", "iss": p["iss"], "aud": p["aud"], "exp": p["exp"], "iat": p["iat"], "jti": "j", "kind": "app"}) + "." + parts[2],
	} {
		t.Run(name, func(t *testing.T) {
			r := (&daemontest.Client{TB: t, Base: base, Token: tok}).Do("GET", "/v1/roles", nil)
			if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("got %d %q, want 401 with error=invalid_token", r.Status, r.Header.Get("WWW-Authenticate"))
			}
		})
	}

	conf := f.oauthConfig(f.clientID, f.secret)
	t.Run("reused code revokes its tokens", func(t *testing.T) {
		pkce := oauth2.GenerateVerifier()
		code := mustCode(t, conf, f.email, f.password, pkce)
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		_, err = conf.Exchange(ctx, code, oauth2.VerifierOption(pkce))
		if got := oauthErrorCode(err); got != "invalid_grant" {
			t.Fatalf("reuse: got %q (%v), want invalid_grant", got, err)
		}
		user := &daemontest.Client{TB: t, Base: base, Token: tok.AccessToken}
		eventlogtest.Eventually(t, 10*time.Second, "the token issued from the reused code is refused", func() bool { return status(user, "/v1/roles") == 401 })
	})
	t.Run("wrong verifier", func(t *testing.T) {
		code := mustCode(t, conf, f.email, f.password, oauth2.GenerateVerifier())
		_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		if got := oauthErrorCode(err); got != "invalid_grant" {
			t.Fatalf("got %q (%v), want invalid_grant", got, err)
		}
	})
	t.Run("code for another client", func(t *testing.T) {
		other := f.admin.Must(201, "POST", "/v1/apps", map[string]any{"name": "Other", "redirectUris": []string{f.redirect}}).Str("id")
		cred := f.admin.Must(201, "POST", "/v1/apps/"+other+"/credentials", nil)
		f.secrets = append(f.secrets, cred.Str("clientSecret"))
		pkce := oauth2.GenerateVerifier()
		code := mustCode(t, conf, f.email, f.password, pkce)
		_, err := f.oauthConfig(cred.Str("clientId"), cred.Str("clientSecret")).Exchange(ctx, code, oauth2.VerifierOption(pkce))
		if got := oauthErrorCode(err); got != "invalid_grant" {
			t.Fatalf("got %q (%v), want invalid_grant", got, err)
		}
	})
	t.Run("code for another redirect URI", func(t *testing.T) {
		pkce := oauth2.GenerateVerifier()
		code := mustCode(t, conf, f.email, f.password, pkce)
		c2 := *conf
		c2.RedirectURL = "http://127.0.0.1/elsewhere"
		_, err := c2.Exchange(ctx, code, oauth2.VerifierOption(pkce))
		if got := oauthErrorCode(err); got != "invalid_grant" {
			t.Fatalf("got %q (%v), want invalid_grant", got, err)
		}
	})
	t.Run("unregistered redirect URI is not redirected to", func(t *testing.T) {
		c2 := *conf
		c2.RedirectURL = "https://evil.example/cb"
		_, resp := signIn(t, &c2, f.email, f.password, oauth2.GenerateVerifier())
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Fatalf("got %d %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("no PKCE", func(t *testing.T) {
		resp := browser(t, conf.AuthCodeURL("s"), f.email, f.password)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("got %d %v, want a redirect with invalid_request", resp.StatusCode, loc)
		}
	})
}

// TestSignIn_Lockout: the 6th sign-in after 5 failures is refused even with
// the right password, saying the account is locked; after the period it
// works. Also the outstanding-code limit, and reactivation by sign-in.
func TestSignIn_Lockout(t *testing.T) {
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) {
		c.LockoutPeriod = 2 * time.Second
		c.SignInRate, c.SignInBurst = 1000, 1000
		c.MaxAuthCodes = 3
	})
	conf := f.oauthConfig(f.clientID, f.secret)
	for i := range 5 {
		_, resp := signIn(t, conf, f.email, "wrong password "+string(rune('a'+i)), oauth2.GenerateVerifier())
		if resp.StatusCode != 401 || !strings.Contains(bodyOf(resp), "Wrong email or password") {
			t.Fatalf("failure %d: got %d, want 401 wrong password", i+1, resp.StatusCode)
		}
	}
	_, resp := signIn(t, conf, f.email, f.password, oauth2.GenerateVerifier())
	if body := bodyOf(resp); resp.StatusCode != 403 || !strings.Contains(body, "locked") || strings.Contains(body, "Wrong email or password") {
		t.Fatalf("6th sign-in with the right password: got %d %s, want 403 saying the account is locked", resp.StatusCode, body)
	}
	eventlogtest.Eventually(t, 10*time.Second, "sign-in after the lockout period", func() bool {
		q, _ := signIn(t, conf, f.email, f.password, oauth2.GenerateVerifier())
		return q != nil && q.Get("code") != ""
	})

	t.Run("outstanding codes", func(t *testing.T) {
		// The Eventually above issued one code; two more reach the limit of 3.
		mustCode(t, conf, f.email, f.password, oauth2.GenerateVerifier())
		mustCode(t, conf, f.email, f.password, oauth2.GenerateVerifier())
		q, resp := signIn(t, conf, f.email, f.password, oauth2.GenerateVerifier())
		if q == nil || q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "Exceeded the maximum number of authorization codes") {
			t.Fatalf("4th code: got %d %v, want invalid_request", resp.StatusCode, q)
		}
		f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.MaxAuthCodes = 100 })
	})

	t.Run("a user who deactivated itself reactivates by signing in", func(t *testing.T) {
		pkce := oauth2.GenerateVerifier()
		tok, err := conf.Exchange(context.Background(), mustCode(t, conf, f.email, f.password, pkce), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatal(err)
		}
		user := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok.AccessToken}
		user.Must(200, "GET", "/v1/roles", nil)
		user.Must(200, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "deactivated"})
		for _, region := range f.m.Config.Regions {
			r := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok.AccessToken, Region: region}
			eventlogtest.Eventually(t, 10*time.Second, "token refused in "+region, func() bool { return status(r, "/v1/roles") == 401 })
		}
		mustCode(t, conf, f.email, f.password, oauth2.GenerateVerifier())
		if got := f.admin.Must(200, "GET", "/v1/users/"+f.user, nil).Str("status"); got != "active" {
			t.Fatalf("status after sign-in: got %s, want active", got)
		}

		// An administrator's deactivation is not lifted by signing in.
		f.admin.Must(200, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "deactivated"})
		if q, resp := signIn(t, conf, f.email, f.password, oauth2.GenerateVerifier()); q != nil && q.Get("code") != "" {
			t.Fatalf("sign-in after an administrator's deactivation: got a code (%d), want a refusal", resp.StatusCode)
		}
		if got := f.admin.Must(200, "GET", "/v1/users/"+f.user, nil).Str("status"); got != "deactivated" {
			t.Fatalf("status after a refused sign-in: got %s, want deactivated", got)
		}
		f.admin.Must(200, "PATCH", "/v1/users/"+f.user, map[string]any{"status": "active"})
	})
}

// TestAPI_RateLimits: the token endpoint answers 429 with Retry-After and an
// OAuth error past its rate per client; the sign-in page per account.
func TestAPI_RateLimits(t *testing.T) {
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.TokenRate, c.TokenBurst, c.SignInRate, c.SignInBurst = 0.01, 2, 0.01, 2 })
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {f.clientID}, "client_secret": {f.secret}}
	var last *http.Response
	for range 3 {
		resp, err := openapitest.Client(t).PostForm(daemontest.URL(f.m)+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		last = resp
		resp.Body.Close()
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd token request: got %d Retry-After %q, want 429 with Retry-After", last.StatusCode, last.Header.Get("Retry-After"))
	}
	conf := f.oauthConfig(f.clientID, f.secret)
	var resp *http.Response
	for range 3 {
		_, resp = signIn(t, conf, f.email, "wrong-password", oauth2.GenerateVerifier())
	}
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd sign-in: got %d, want 429 with Retry-After", resp.StatusCode)
	}
}

// TestCredentials_Lifecycle: several credentials at once; disable, enable,
// delete; API keys likewise, accepted on reads.
func TestCredentials_Lifecycle(t *testing.T) {
	f := newIDPFixture(t)
	base := daemontest.URL(f.m)
	second := f.admin.Must(201, "POST", "/v1/apps/"+f.app+"/credentials", nil)
	tokenStatus := func(id, secret string) int {
		resp, err := openapitest.Client(t).PostForm(base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b := tokenStatus(f.clientID, f.secret), tokenStatus(second.Str("clientId"), second.Str("clientSecret")); a != 200 || b != 200 {
		t.Fatalf("two active credentials: got %d %d", a, b)
	}
	credPath := "/v1/apps/" + f.app + "/credentials/" + second.Str("credentialId")
	f.admin.Must(200, "PATCH", credPath, map[string]any{"status": "disabled"})
	if got := tokenStatus(second.Str("clientId"), second.Str("clientSecret")); got != 401 {
		t.Fatalf("disabled credential: got %d, want 401", got)
	}
	f.admin.Must(200, "PATCH", credPath, map[string]any{"status": "enabled"})
	if got := tokenStatus(second.Str("clientId"), second.Str("clientSecret")); got != 200 {
		t.Fatalf("re-enabled credential: got %d, want 200", got)
	}
	f.admin.Must(200, "PATCH", credPath, map[string]any{"status": "disabled"})
	f.admin.Must(200, "DELETE", credPath, nil)
	if got := tokenStatus(second.Str("clientId"), second.Str("clientSecret")); got != 401 {
		t.Fatalf("deleted credential: got %d, want 401", got)
	}

	key := f.admin.Must(201, "POST", "/v1/apps/"+f.app+"/apiKeys", nil)
	f.secrets = append(f.secrets, key.Str("apiKey"))
	keyPath := "/v1/apps/" + f.app + "/apiKeys/" + key.Str("keyId")
	withKey := func(tok string) int {
		return (&daemontest.Client{TB: t, Base: base}).Do("GET", "/v1/roles", nil, "X-API-Key", key.Str("apiKey"), "Consistency-Token", tok).Status
	}
	if got := withKey(key.Str("consistencyToken")); got != 200 {
		t.Fatalf("API key: got %d, want 200", got)
	}
	ct := f.admin.Must(200, "PATCH", keyPath, map[string]any{"status": "disabled"}).Str("consistencyToken")
	if got := withKey(ct); got != 401 {
		t.Fatalf("disabled API key: got %d, want 401", got)
	}
	ct = f.admin.Must(200, "PATCH", keyPath, map[string]any{"status": "enabled"}).Str("consistencyToken")
	if got := withKey(ct); got != 200 {
		t.Fatalf("enabled API key: got %d, want 200", got)
	}
	ct = f.admin.Must(200, "DELETE", keyPath, nil).Str("consistencyToken")
	if got := withKey(ct); got != 401 {
		t.Fatalf("deleted API key: got %d, want 401", got)
	}
}

// readMail waits for the newest outbox mail of kind and returns its token.
func readMail(t *testing.T, m *daemon.Main, kind string, after int) (string, int) {
	t.Helper()
	dir := filepath.Join(m.Config.DataDir, "outbox")
	var files []string
	eventlogtest.Eventually(t, 10*time.Second, kind+" mail", func() bool {
		files, _ = filepath.Glob(filepath.Join(dir, "*-"+kind+"-*.json"))
		return len(files) > after
	})
	slices.Sort(files)
	fi, err := os.Stat(files[len(files)-1])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("outbox file mode: got %v %v, want 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(files[len(files)-1])
	var mail api.Mail
	if err := json.Unmarshal(data, &mail); err != nil || mail.Token == "" {
		t.Fatalf("mail: %s", data)
	}
	return mail.Token, len(files)
}

// TestPasswords_ChangeAndReset: a change needs the current password; a reset
// token from the mail sender works once.
func TestPasswords_ChangeAndReset(t *testing.T) {
	f := newIDPFixture(t)
	ctx := context.Background()
	conf := f.oauthConfig(f.clientID, f.secret)
	pkce := oauth2.GenerateVerifier()
	tok, err := conf.Exchange(ctx, mustCode(t, conf, f.email, f.password, pkce), oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatal(err)
	}
	me := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: tok.AccessToken}
	me.Must(403, "PUT", "/v1/users/"+f.user+"/password", map[string]any{"currentPassword": "nope nope", "newPassword": "second password"})
	me.Must(200, "PUT", "/v1/users/"+f.user+"/password", map[string]any{"currentPassword": f.password, "newPassword": "second password"})
	f.passwords = append(f.passwords, "second password")
	mustCode(t, conf, f.email, "second password", oauth2.GenerateVerifier())
	if q, _ := signIn(t, conf, f.email, f.password, oauth2.GenerateVerifier()); q != nil {
		t.Fatal("old password still signs in")
	}

	anon := &daemontest.Client{TB: t, Base: daemontest.URL(f.m)}
	anon.Must(202, "POST", "/v1/passwordResets", map[string]any{"realm": f.m.Bootstrap.Realm, "email": "nobody@example.com"})
	anon.Must(202, "POST", "/v1/passwordResets", map[string]any{"realm": f.m.Bootstrap.Realm, "email": f.email})
	token, _ := readMail(t, f.m, "passwordReset", 0)
	anon.Must(200, "POST", "/v1/passwordResets/confirm", map[string]any{"token": token, "newPassword": "third password"})
	f.passwords = append(f.passwords, "third password")
	anon.Must(400, "POST", "/v1/passwordResets/confirm", map[string]any{"token": token, "newPassword": "fourth password"})
	mustCode(t, conf, f.email, "third password", oauth2.GenerateVerifier())
	for _, raw := range rawMessages(t, f.m) {
		if bytes.Contains(raw, []byte(token)) || bytes.Contains(raw, []byte(strings.SplitN(token, ".", 2)[1])) {
			t.Fatal("the reset token is in the log")
		}
	}
}

// TestAPI_Invitations: invite with roles and groups (at most 5 each), request
// again, accept.
func TestAPI_Invitations(t *testing.T) {
	f := newIDPFixture(t)
	group := f.admin.Must(201, "POST", "/v1/groups", map[string]any{"name": "Team"}).Str("id")
	six := []string{group, group, group, group, group, group}
	f.admin.Must(409, "POST", "/v1/invitations", map[string]any{"email": "x@example.com", "groups": six})
	inv := f.admin.Must(201, "POST", "/v1/invitations", map[string]any{"email": "grace@example.com", "roles": []string{"OrgInviter"}, "groups": []string{group}})
	first, n := readMail(t, f.m, "invitation", 0)
	f.admin.Must(200, "POST", "/v1/invitations/"+inv.Str("id")+"/resend", nil)
	second, _ := readMail(t, f.m, "invitation", n)
	anon := &daemontest.Client{TB: t, Base: daemontest.URL(f.m)}
	anon.Must(400, "POST", "/v1/invitations/accept", map[string]any{"token": first, "name": "Grace", "password": "grace password"})
	u := anon.Must(200, "POST", "/v1/invitations/accept", map[string]any{"token": second, "name": "Grace Hopper", "password": "grace password"})
	f.passwords = append(f.passwords, "grace password")
	got := f.admin.Must(200, "GET", "/v1/users/"+u.Str("id"), nil, "Consistency-Token", u.Str("consistencyToken"))
	if got.Str("email") != "grace@example.com" || got.Str("name") != "Grace Hopper" {
		t.Fatalf("invited user: got %s", got.Raw)
	}
	if roles := got.Body["roles"].([]any); len(roles) != 1 || roles[0] != "OrgInviter" {
		t.Fatalf("roles: got %v", roles)
	}
	mustCode(t, f.oauthConfig(f.clientID, f.secret), "grace@example.com", "grace password", oauth2.GenerateVerifier())
}

// rawMessages reads every message of the event stream and of the key vault.
func rawMessages(t *testing.T, m *daemon.Main) [][]byte {
	t.Helper()
	ctx := context.Background()
	js := m.Log().JetStream()
	var out [][]byte
	for _, name := range []string{m.Log().StreamName(), "KV_" + keyvault.DefaultBucket} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, _ := st.Info(ctx)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			msg, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			} else if err != nil {
				t.Fatalf("%s seq %d: %v", name, seq, err)
			}
			raw := append([]byte(msg.Subject+"\n"), msg.Data...)
			for k, vs := range msg.Header {
				raw = append(raw, []byte("\n"+k+": "+strings.Join(vs, ","))...)
			}
			out = append(out, raw)
		}
	}
	return out
}

// TestAPI_CryptoShredding: after a full scenario, no raw message of the stream or
// the key vault holds a password, client secret or API key; after DELETE,
// neither any replica, nor the change feed, nor the stream, nor the vault
// reveals the deleted user's email or name.
func TestAPI_CryptoShredding(t *testing.T) {
	f := newIDPFixture(t)
	ctx := context.Background()
	key := f.admin.Must(201, "POST", "/v1/apps/"+f.app+"/apiKeys", nil)
	f.secrets = append(f.secrets, key.Str("apiKey"))
	conf := f.oauthConfig(f.clientID, f.secret)
	pkce := oauth2.GenerateVerifier()
	if _, err := conf.Exchange(ctx, mustCode(t, conf, f.email, f.password, pkce), oauth2.VerifierOption(pkce)); err != nil {
		t.Fatal(err)
	}
	signIn(t, conf, f.email, "a wrong password", oauth2.GenerateVerifier())
	f.passwords = append(f.passwords, "a wrong password")
	// Readable while the user exists, everywhere.
	for _, region := range f.m.Config.Regions {
		c := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: f.admin.Token, Region: region}
		if got := c.Must(200, "GET", "/v1/users/"+f.user, nil).Str("email"); got != f.email {
			t.Fatalf("%s before deletion: got email %q", region, got)
		}
	}
	scan := func(stage string, forbidden []string) {
		t.Helper()
		raws := rawMessages(t, f.m)
		if len(raws) < 10 {
			t.Fatalf("%s: read %d raw messages, want the whole scenario", stage, len(raws))
		}
		for _, raw := range raws {
			for _, s := range forbidden {
				if bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(s))) {
					t.Errorf("%s: a raw message holds %q: %.200s", stage, s, raw)
				}
			}
		}
	}
	personalData := []string{f.email, f.name, "Lovelace"}
	scan("before deletion", append(append(append([]string(nil), f.passwords...), f.secrets...), personalData...))

	del := f.admin.Must(200, "DELETE", "/v1/users/"+f.user, nil)
	for _, region := range f.m.Config.Regions {
		c := &daemontest.Client{TB: t, Base: daemontest.URL(f.m), Token: f.admin.Token, Region: region}
		c.Must(404, "GET", "/v1/users/"+f.user, nil, "Consistency-Token", del.Str("consistencyToken"))
		list := c.Must(200, "GET", "/v1/users", nil, "Consistency-Token", del.Str("consistencyToken"))
		if strings.Contains(string(list.Raw), f.email) || strings.Contains(string(list.Raw), f.name) {
			t.Errorf("%s list after deletion: %s", region, list.Raw)
		}
	}
	// The change feed, from the first event.
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", daemontest.URL(f.m)+"/v1/changes", nil)
	req.Header.Set("Authorization", "Bearer "+f.admin.Token)
	if resp, err := openapitest.Client(t).Do(req); err == nil {
		feed, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, s := range append(append(personalData, f.secrets...), f.passwords...) {
			if strings.Contains(strings.ToLower(string(feed)), strings.ToLower(s)) {
				t.Errorf("change feed holds %q", s)
			}
		}
		if !strings.Contains(string(feed), "IdentityDeleted") {
			t.Errorf("change feed: %d bytes without the deletion", len(feed))
		}
	}
	scan("after deletion", append(append(append([]string(nil), f.passwords...), f.secrets...), personalData...))
	// And the sealed data in the log can no longer be opened: the key is gone.
	v, err := keyvault.Open(ctx, f.m.Log(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.DataKey(ctx, f.m.Bootstrap.Realm, f.user, false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
		t.Fatalf("data key after deletion: got %v, want destroyed", err)
	}
}

// metricValue reads one sample of GET /metrics, e.g.
// `iam_signin_password_verifications_total{against="dummy"}`.
func metricValue(t *testing.T, m *daemon.Main, sample string) string {
	t.Helper()
	resp, err := openapitest.Client(t).Get(daemontest.URL(m) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	t.Fatalf("metrics: no sample %s", sample)
	return ""
}

// An unknown email and a wrong password get the same answer, in status and
// text, and cost the same: the unknown email is verified against a dummy
// argon2id hash (made with the server's hash parameters).
func TestSignIn_UnknownEmailLikeWrongPassword(t *testing.T) {
	f := newIDPFixture(t)
	f.m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.SignInRate, c.SignInBurst = 1000, 1000 })
	conf := f.oauthConfig(f.clientID, f.secret)
	verifier := oauth2.GenerateVerifier()
	const dummy, user = `iam_signin_password_verifications_total{against="dummy"}`, `iam_signin_password_verifications_total{against="user"}`
	dummies, users := metricValue(t, f.m, dummy), metricValue(t, f.m, user)

	_, unknown := signIn(t, conf, "nobody@example.com", "wrong password", verifier)
	if got := metricValue(t, f.m, dummy); got == dummies {
		t.Errorf("unknown email: dummy verifications stayed at %s, want one more", got)
	}
	_, wrong := signIn(t, conf, f.email, "wrong password", verifier)
	if got := metricValue(t, f.m, user); got == users {
		t.Errorf("wrong password: user verifications stayed at %s, want one more", got)
	}
	if unknown.StatusCode != wrong.StatusCode || unknown.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %d for an unknown email and %d for a wrong password, want 401 for both", unknown.StatusCode, wrong.StatusCode)
	}
	a := strings.ReplaceAll(bodyOf(unknown), "nobody@example.com", "EMAIL")
	b := strings.ReplaceAll(bodyOf(wrong), f.email, "EMAIL")
	if a != b {
		t.Fatalf("the answers differ:\nunknown email:\n%s\nwrong password:\n%s", a, b)
	}
}

// Redirect URIs are parsed at registration: look-alikes of loopback hosts
// and URIs that do not parse are refused, and sign-in never answers 500.
func TestSignIn_RedirectURIsParsed(t *testing.T) {
	f := newIDPFixture(t)
	for _, u := range []string{"http://localhost.evil.example/cb", "https://%zz", "http://127.0.0.1.evil.example/cb", "http://localhost@evil.example/cb"} {
		r := f.admin.Do("POST", "/v1/apps", map[string]any{"name": "Bad", "redirectUris": []string{u}})
		wantProblem(t, r, http.StatusBadRequest, "invalid_argument", "redirectUris")
	}
	for _, u := range []string{"http://localhost:8080/cb", "http://[::1]:53682/cb", "http://127.0.0.1/cb", "https://app.example.com/cb"} {
		f.admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "Good", "redirectUris": []string{u}})
	}
	conf := f.oauthConfig(f.clientID, f.secret)
	for _, redirect := range []string{"https://%zz", "%", "http://localhost.evil.example/cb"} {
		conf.RedirectURL = redirect
		authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		resp, err := openapitest.Client(t).Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("authorize with redirect_uri %q: got %d, want 400", redirect, resp.StatusCode)
		}
		resp = browser(t, authURL, f.email, f.password)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusFound {
			t.Errorf("sign-in with redirect_uri %q: got %d, want an error page", redirect, resp.StatusCode)
		}
	}
}
