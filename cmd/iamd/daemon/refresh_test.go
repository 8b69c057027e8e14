package daemon_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/iam-project/iam/api/openapitest"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// codeFrom signs in on the authorize page of base as a browser would and
// returns the code of the redirect.
func codeFrom(t *testing.T, base string, conf *oauth2.Config, email, password, verifier string) string {
	t.Helper()
	noFollow := &http.Client{Transport: openapitest.Transport(t, nil), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"email": {email}, "password": {password}}
	for _, m := range hiddenField.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], strings.ReplaceAll(m[2], "&#43;", "+"))
	}
	resp, err = noFollow.PostForm(base+"/oauth2/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if code := loc.Query().Get("code"); code != "" {
		return code
	}
	t.Fatalf("sign-in at %s: got %d %s, want a redirect with a code", base, resp.StatusCode, loc)
	return ""
}

// TestRefresh_AcrossHubNodes: a refresh-token family is the log's, not a
// process's: a token rotated through one hub node is spent for every other,
// and its replay through a third ends the family for all.
//
// A replay through a node right after the stream's leader is lost is not
// driven here: the writer then checks its refusal against the realm's last
// sequence asked of the stream's leader (eventlog.Log.LastForRealm, no
// direct get), so a lagging node catches up rather than calling the token
// unknown.
func TestRefresh_AcrossHubNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node hub")
	}
	top := startTopology(t, topologyOptions{hubNodes: 3})
	base := func(i int) string { return daemontest.URL(top.hubs[i]) }
	b := top.hubs[0].Bootstrap
	admin := &daemontest.Client{TB: t, Base: base(0), Token: daemontest.ClientToken(t, base(0), b.ClientID, b.ClientSecret, "")}
	const email, password, redirect = "ada@example.com", "correct horse battery", "http://127.0.0.1/callback"
	// The hub's first write with personal data may find the key vault
	// still electing its leader: 503, which a client retries.
	eventlogtest.Eventually(t, 20*time.Second, "the hub takes its first user", func() bool {
		r := admin.Do("POST", "/v1/users", map[string]any{"email": email, "name": "Ada", "password": password})
		if r.Status != http.StatusCreated && r.Status != http.StatusServiceUnavailable {
			t.Fatalf("POST /v1/users: got %d %s, want 201 (or 503 while the hub starts)", r.Status, r.Raw)
		}
		return r.Status == http.StatusCreated
	})
	app := admin.Must(http.StatusCreated, "POST", "/v1/apps", map[string]any{"name": "Portal", "redirectUris": []string{redirect}}).Str("id")
	cred := admin.Must(http.StatusCreated, "POST", "/v1/apps/"+app+"/credentials", nil)
	conf := func(i int) *oauth2.Config {
		return &oauth2.Config{ClientID: cred.Str("clientId"), ClientSecret: cred.Str("clientSecret"), RedirectURL: redirect,
			Scopes:   []string{"openid", "offline_access"},
			Endpoint: oauth2.Endpoint{AuthURL: base(i) + "/oauth2/authorize", TokenURL: base(i) + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	}
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	tok, err := conf(0).Exchange(ctx, codeFrom(t, base(0), conf(0), email, password, verifier), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange at node 0: got %v %v, want a refresh token", tok, err)
	}
	refresh := func(i int, rt string) (*oauth2.Token, error) {
		return conf(i).TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	next, err := refresh(1, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh at node 1: %v", err)
	}
	if _, err := refresh(2, tok.RefreshToken); !isInvalidGrant(err) {
		t.Fatalf("the spent token at node 2: got %v, want invalid_grant", err)
	}
	// That replay ended the family for every node.
	if _, err := refresh(0, next.RefreshToken); !isInvalidGrant(err) {
		t.Fatalf("the family's newest token at node 0 after the replay: got %v, want invalid_grant", err)
	}
}

func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}
