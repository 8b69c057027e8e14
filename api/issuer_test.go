package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// TestIssuer_NotFromHost: a forged Host header changes neither the iss of
// an issued token nor discovery's issuer and endpoints: iamd without
// --issuer uses its listener's URL, fixed at start.
func TestIssuer_NotFromHost(t *testing.T) {
	m := daemontest.Start(t, "")
	base := daemontest.URL(m)
	if m.Issuer != base {
		t.Fatalf("issuer: got %q, want the listener's URL %q", m.Issuer, base)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Host = "evil.example"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(m.Bootstrap.ClientID), url.QueryEscape(m.Bootstrap.ClientSecret))
	resp, err := openapitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token with Host evil.example: got %d", resp.StatusCode)
	}
	if _, p := segmentsOf(t, tok.AccessToken); p["iss"] != base {
		t.Fatalf("iss with Host evil.example: got %v, want %s", p["iss"], base)
	}
	// The token verifies where the issuer is checked.
	(&daemontest.Client{TB: t, Base: base, Token: tok.AccessToken}).Must(http.StatusOK, "GET", "/v1/roles", nil)

	for _, host := range []string{"", "evil.example"} {
		req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/openid-configuration", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := openapitest.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var disc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&disc)
		resp.Body.Close()
		raw, _ := json.Marshal(disc)
		if disc["issuer"] != base || strings.Contains(string(raw), "evil") {
			t.Fatalf("discovery with Host %q: got %s, want issuer %s and no evil.example", host, raw, base)
		}
	}
}
