package iam

import "strings"

// An app's secrets: OAuth 2.0 client credentials and API keys, and whether
// each is disabled. Only argon2id hashes of the secrets are ever stored.
// And its default project, the scope of its tokens asked for without one.

// --- commands ------------------------------------------------------------------

// AddCredential adds OAuth client credentials to an app.
type AddCredential struct {
	App          string
	CredentialID string
	ClientID     string
	SecretHash   string
}

func (c AddCredential) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c AddCredential) validate() error {
	if c.SecretHash == "" || !strings.HasPrefix(c.SecretHash, "$argon2id$") {
		return Errorf(EInternal, "credential secret must be hashed with argon2id")
	}
	if err := ValidID("credentialId", c.CredentialID); err != nil {
		return err
	}
	return ValidID("clientId", c.ClientID)
}
func (c AddCredential) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	creds := app.AppState().Credentials
	if _, dup := creds[c.CredentialID]; dup {
		return nil, &Error{Code: EConflict, Field: "credentialId", Message: "credential " + c.CredentialID + " already exists"}
	}
	if len(creds) >= s.Limits.CredentialsPerApp {
		return nil, limitErr("an app has at most %d active credentials", s.Limits.CredentialsPerApp)
	}
	if _, taken := s.clients.Lookup(c.ClientID); taken {
		return nil, Errorf(EConflict, "client id taken")
	}
	return []Event{CredentialAdded{InRealm{r.ID}, c.App, c.CredentialID, c.ClientID, c.SecretHash}}, nil
}

// RemoveCredential deletes client credentials of an app.
type RemoveCredential struct{ App, CredentialID string }

func (c RemoveCredential) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c RemoveCredential) validate() error { return nil }
func (c RemoveCredential) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, ok := app.AppState().Credentials[c.CredentialID]; !ok {
		return nil, &Error{Code: ENotFound, Field: "credentialId", Message: "credential " + c.CredentialID + " not found"}
	}
	return []Event{CredentialRemoved{InRealm{r.ID}, c.App, c.CredentialID}}, nil
}

// SetCredentialStatus disables or enables client credentials of an app.
type SetCredentialStatus struct {
	App, CredentialID string
	Disabled          bool
}

func (c SetCredentialStatus) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c SetCredentialStatus) validate() error { return nil }
func (c SetCredentialStatus) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	cred, ok := app.AppState().Credentials[c.CredentialID]
	if !ok {
		return nil, &Error{Code: ENotFound, Field: "credentialId", Message: "credential " + c.CredentialID + " not found"}
	}
	if cred.Disabled == c.Disabled {
		return nil, nil
	}
	return []Event{CredentialStatusChanged{InRealm{r.ID}, c.App, c.CredentialID, c.Disabled}}, nil
}

// AddAPIKey adds an API key (already hashed) to an app.
type AddAPIKey struct{ App, KeyID, KeyHash string }

func (c AddAPIKey) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c AddAPIKey) validate() error {
	if !strings.HasPrefix(c.KeyHash, "$argon2id$") {
		return Errorf(EInternal, "API key must be hashed with argon2id")
	}
	return ValidID("keyId", c.KeyID)
}
func (c AddAPIKey) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	keys := app.AppState().APIKeys
	if _, dup := keys[c.KeyID]; dup {
		return nil, &Error{Code: EConflict, Field: "keyId", Message: "API key " + c.KeyID + " already exists"}
	}
	if len(keys) >= s.Limits.APIKeysPerApp {
		return nil, limitErr("an app has at most %d API keys", s.Limits.APIKeysPerApp)
	}
	return []Event{APIKeyAdded{InRealm{r.ID}, c.App, c.KeyID, c.KeyHash}}, nil
}

// RemoveAPIKey deletes an API key of an app.
type RemoveAPIKey struct{ App, KeyID string }

func (c RemoveAPIKey) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c RemoveAPIKey) validate() error { return nil }
func (c RemoveAPIKey) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	if _, ok := app.AppState().APIKeys[c.KeyID]; !ok {
		return nil, &Error{Code: ENotFound, Field: "keyId", Message: "API key " + c.KeyID + " not found"}
	}
	return []Event{APIKeyRemoved{InRealm{r.ID}, c.App, c.KeyID}}, nil
}

// SetAPIKeyStatus disables or enables an API key of an app.
type SetAPIKeyStatus struct {
	App, KeyID string
	Disabled   bool
}

func (c SetAPIKeyStatus) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c SetAPIKeyStatus) validate() error { return nil }
func (c SetAPIKeyStatus) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("app", c.App)
	if err != nil {
		return nil, err
	}
	as := app.AppState()
	if _, ok := as.APIKeys[c.KeyID]; !ok {
		return nil, &Error{Code: ENotFound, Field: "keyId", Message: "API key " + c.KeyID + " not found"}
	}
	if as.DisabledAPIKeys.Has(c.KeyID) == c.Disabled {
		return nil, nil
	}
	return []Event{APIKeyStatusChanged{InRealm{r.ID}, c.App, c.KeyID, c.Disabled}}, nil
}

// SetDefaultProject sets (or, with Project "", clears) the project a
// client-credentials token of the app is scoped to when it is asked for
// without a scope (HERE: "a default project for an app, which automatically
// fetches a project scoped access token").
type SetDefaultProject struct{ App, Project string }

func (c SetDefaultProject) permission(r *Realm) (string, string) {
	return ActionManageApp, AppHRN(r.ID, c.App)
}
func (c SetDefaultProject) validate() error {
	if c.Project == "" {
		return nil
	}
	return ValidID("defaultProject", c.Project)
}
func (c SetDefaultProject) decide(s *State, r *Realm) ([]Event, error) {
	app, err := r.app("id", c.App)
	if err != nil {
		return nil, err
	}
	if app.AppState().DefaultProject == c.Project {
		return nil, nil
	}
	if c.Project != "" {
		p, err := r.project("defaultProject", c.Project)
		if err != nil {
			return nil, err
		}
		// The token endpoint would refuse the scope of a project the app
		// is not in; a default it could never use is refused here, where
		// the admin can act on it.
		if !p.reaches(app) {
			return nil, &Error{Code: EConflict, Field: "defaultProject",
				Message: "app " + c.App + " is not a member of project " + c.Project + " (directly or through a group): make it a member first"}
		}
	}
	return []Event{DefaultProjectSet{InRealm{r.ID}, c.App, c.Project}}, nil
}

// reaches says whether id is a member of p, directly or through a group.
func (p *Project) reaches(id *Identity) bool {
	if _, ok := p.Members[id.ID]; ok {
		return true
	}
	for g := range id.Groups.All() {
		if _, ok := p.Members[g]; ok {
			return true
		}
	}
	return false
}

// --- events --------------------------------------------------------------------

// CredentialAdded adds OAuth 2.0 client credentials to an app. SecretHash is
// argon2id; the secret itself is shown to the caller once and never stored.
type CredentialAdded struct {
	InRealm
	App          string `json:"app"`
	CredentialID string `json:"credentialId"`
	ClientID     string `json:"clientId"`
	SecretHash   string `json:"secretHash"`
}

// CredentialRemoved deletes client credentials of an app.
type CredentialRemoved struct {
	InRealm
	App          string `json:"app"`
	CredentialID string `json:"credentialId"`
}

// CredentialStatusChanged disables or enables client credentials.
type CredentialStatusChanged struct {
	InRealm
	App          string `json:"app"`
	CredentialID string `json:"credentialId"`
	Disabled     bool   `json:"disabled"`
}

// APIKeyAdded adds an API key to an app; KeyHash is argon2id of the key.
type APIKeyAdded struct {
	InRealm
	App     string `json:"app"`
	KeyID   string `json:"keyId"`
	KeyHash string `json:"keyHash"`
}

// APIKeyRemoved deletes an API key of an app.
type APIKeyRemoved struct {
	InRealm
	App   string `json:"app"`
	KeyID string `json:"keyId"`
}

// APIKeyStatusChanged disables or enables an API key.
type APIKeyStatusChanged struct {
	InRealm
	App      string `json:"app"`
	KeyID    string `json:"keyId"`
	Disabled bool   `json:"disabled"`
}

// DefaultProjectSet sets the default project of an app (Project "":
// none). It is kept when the app later leaves the project: the token
// endpoint then refuses a request without scope, as HERE does, rather than
// silently hand out a token of another reach.
type DefaultProjectSet struct {
	InRealm
	App     string `json:"app"`
	Project string `json:"project,omitempty"`
}

// EventType implements Event.
func (CredentialAdded) EventType() string { return "CredentialAdded" }

// EventType implements Event.
func (CredentialRemoved) EventType() string { return "CredentialRemoved" }

// EventType implements Event.
func (CredentialStatusChanged) EventType() string { return "CredentialStatusChanged" }

// EventType implements Event.
func (APIKeyAdded) EventType() string { return "APIKeyAdded" }

// EventType implements Event.
func (APIKeyRemoved) EventType() string { return "APIKeyRemoved" }

// EventType implements Event.
func (APIKeyStatusChanged) EventType() string { return "APIKeyStatusChanged" }

// EventType implements Event.
func (DefaultProjectSet) EventType() string { return "DefaultProjectSet" }

// --- apply ---------------------------------------------------------------------

func (e CredentialAdded) apply(s *State, touch Touch) {
	put(&s.realms[e.Realm].ownIdentity(e.App).ownApp().Credentials, e.CredentialID, Credential{ClientID: e.ClientID, SecretHash: e.SecretHash})
	s.clients.put(s.gen, e.ClientID, credentialRef{e.Realm, e.App, e.CredentialID})
	touch(Change{Kind: ChangeCredential, Realm: e.Realm, From: e.App, To: e.CredentialID})
}

func (e CredentialRemoved) apply(s *State, touch Touch) {
	app := s.realms[e.Realm].ownIdentity(e.App).ownApp()
	s.clients.del(s.gen, app.Credentials[e.CredentialID].ClientID)
	drop(&app.Credentials, e.CredentialID)
	touch(Change{Kind: ChangeCredential, Realm: e.Realm, From: e.App, To: e.CredentialID})
}

func (e CredentialStatusChanged) apply(s *State, touch Touch) {
	app := s.realms[e.Realm].ownIdentity(e.App).ownApp()
	c := app.Credentials[e.CredentialID]
	c.Disabled = e.Disabled
	app.Credentials[e.CredentialID] = c
	touch(Change{Kind: ChangeCredential, Realm: e.Realm, From: e.App, To: e.CredentialID})
}

func (e APIKeyAdded) apply(s *State, touch Touch) {
	put(&s.realms[e.Realm].ownIdentity(e.App).ownApp().APIKeys, e.KeyID, e.KeyHash)
	s.apiKeys.put(s.gen, e.KeyID, credentialRef{e.Realm, e.App, e.KeyID})
	touch(Change{Kind: ChangeAPIKey, Realm: e.Realm, From: e.App, To: e.KeyID})
}

func (e APIKeyRemoved) apply(s *State, touch Touch) {
	app := s.realms[e.Realm].ownIdentity(e.App).ownApp()
	drop(&app.APIKeys, e.KeyID)
	if app.DisabledAPIKeys.Has(e.KeyID) {
		app.DisabledAPIKeys.remove(e.KeyID)
		touch(Change{Kind: ChangeAPIKeyStatus, Realm: e.Realm, From: e.App, To: e.KeyID})
	}
	s.apiKeys.del(s.gen, e.KeyID)
	touch(Change{Kind: ChangeAPIKey, Realm: e.Realm, From: e.App, To: e.KeyID})
}

func (e APIKeyStatusChanged) apply(s *State, touch Touch) {
	app := s.realms[e.Realm].ownIdentity(e.App).ownApp()
	if e.Disabled {
		app.DisabledAPIKeys.add(e.KeyID)
	} else {
		app.DisabledAPIKeys.remove(e.KeyID)
	}
	touch(Change{Kind: ChangeAPIKeyStatus, Realm: e.Realm, From: e.App, To: e.KeyID})
}

func (e DefaultProjectSet) apply(s *State, touch Touch) {
	app := s.realms[e.Realm].ownIdentity(e.App).ownApp()
	if app.DefaultProject != "" {
		touch(Change{Kind: ChangeDefaultProject, Realm: e.Realm, From: e.App, To: app.DefaultProject})
	}
	app.DefaultProject = e.Project
	if e.Project != "" {
		touch(Change{Kind: ChangeDefaultProject, Realm: e.Realm, From: e.App, To: e.Project})
	}
}
