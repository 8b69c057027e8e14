package writer

import (
	"context"
	"fmt"
	"strings"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// BootstrapAdmin is the first admin's credentials, shown once.
type BootstrapAdmin struct {
	Realm        string `json:"realm"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	TokenURL     string `json:"tokenUrl"`
}

// Bootstrap creates, on an empty log, a realm and an admin app with the
// OrgAdmin role and client credentials. It returns nil when the log already
// holds a realm: a restart does not bootstrap again.
func Bootstrap(ctx context.Context, w *Writer, hp auth.HashParams) (*BootstrapAdmin, error) {
	empty := false
	_ = w.View(func(st *iam.State) error {
		empty = len(st.RealmIDs()) == 0
		return nil
	})
	if !empty {
		return nil, nil
	}
	realm := "org" + strings.TrimPrefix(auth.NewID("", 10), "-")
	app := auth.NewID("a", 16)
	secret := auth.NewSecret()
	hash, err := auth.Hash(secret, hp)
	if err != nil {
		return nil, err
	}
	admin := &BootstrapAdmin{Realm: realm, ClientID: auth.NewID("", 20), ClientSecret: secret}
	for _, cmd := range []iam.Command{
		iam.CreateRealm{ID: realm, Name: realm},
		iam.CreateApp{ID: app, Name: "bootstrap admin"},
		iam.GrantRole{Identity: app, Role: iam.RoleOrgAdmin},
		iam.AddCredential{App: app, CredentialID: auth.NewID("cred", 12), ClientID: admin.ClientID, SecretHash: hash},
	} {
		if _, err := w.Execute(ctx, iam.Request{Realm: realm, Command: cmd}); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	return admin, nil
}
