package api_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// BenchmarkToken_Issue: client_credentials tokens issued per second over
// HTTP (the secret check hits the verify cache after the first request).
func BenchmarkToken_Issue(b *testing.B) {
	m := daemontest.StartCost(b, auth.DefaultHashParams())
	m.API().ConfigureIdentity(func(c *api.IdentityConfig) { c.TokenRate, c.TokenBurst = 1e9, 1<<30 })
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {m.Bootstrap.ClientID}, "client_secret": {m.Bootstrap.ClientSecret}}.Encode()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Post(daemontest.URL(m)+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form))
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("token: %v %v", err, resp.Status)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkToken_Verify: authenticated reads per second (signature check +
// the replica's identity check) on GET /v1/roles.
func BenchmarkToken_Verify(b *testing.B) {
	m := daemontest.StartCost(b, auth.LowCostHashParams())
	c := daemontest.AdminClient(b, m)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", daemontest.URL(m)+"/v1/roles", nil)
			req.Header.Set("Authorization", "Bearer "+c.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("verify: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkSignIn: one sign-in (form POST → argon2id verify → the writer
// records it and issues a code) with the default argon2id cost.
func BenchmarkSignIn(b *testing.B) {
	m := daemontest.StartCost(b, auth.DefaultHashParams())
	m.API().ConfigureIdentity(func(c *api.IdentityConfig) {
		c.SignInRate, c.SignInBurst, c.MaxAuthCodes, c.AuthCodeTTL = 1e9, 1<<30, 1<<30, time.Second
	})
	admin := daemontest.AdminClient(b, m)
	admin.Must(201, "POST", "/v1/users", map[string]any{"email": "bench@example.com", "name": "Bench", "password": "bench password"})
	app := admin.Must(201, "POST", "/v1/apps", map[string]any{"name": "B", "redirectUris": []string{"http://127.0.0.1/cb"}}).Str("id")
	cred := admin.Must(201, "POST", "/v1/apps/"+app+"/credentials", nil)
	conf := &oauth2.Config{ClientID: cred.Str("clientId"), RedirectURL: "http://127.0.0.1/cb", Endpoint: oauth2.Endpoint{AuthURL: daemontest.URL(m) + "/oauth2/authorize"}}
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("email", "bench@example.com")
	form.Set("password", "bench password")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	b.ResetTimer()
	for range b.N {
		resp, err := noFollow.PostForm(daemontest.URL(m)+"/oauth2/authorize", form)
		if err != nil || resp.StatusCode != http.StatusFound {
			b.Fatalf("sign-in: %v %v", err, resp.Status)
		}
		resp.Body.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sign-in")
}
