package client

import (
	"context"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ClientCredentials returns a token source for an app's client credentials
// at tokenURL (POST /oauth2/token, client_secret_basic). Tokens are cached
// until shortly before they expire. scope, if not empty, is a project HRN
// for project-scoped tokens. hc may be nil.
func ClientCredentials(ctx context.Context, tokenURL, clientID, clientSecret, scope string, hc *http.Client) oauth2.TokenSource {
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: tokenURL,
		AuthStyle: oauth2.AuthStyleInHeader}
	if scope = strings.TrimSpace(scope); scope != "" {
		cfg.Scopes = []string{scope}
	}
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	return cfg.TokenSource(ctx)
}
