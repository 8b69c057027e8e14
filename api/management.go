package api

import (
	"encoding/json"
	"net/http"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// Password rules: long enough to matter, short enough to bound argon2id work.
const (
	minPasswordLength = 8
	maxPasswordBytes  = 256
)

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreateUser{})
	if err != nil {
		return err
	}
	var in struct {
		Email    string  `json:"email"`
		Name     string  `json:"name"`
		Password *string `json:"password"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	if err := validPersonal(in.Email, in.Name); err != nil {
		return err
	}
	// Email and name are sealed under the user's own key (personal.go).
	cmd := iam.CreateSealedUser{ID: c.newID("u", 16, "user")}
	if in.Password != nil {
		pw := *in.Password
		if err := validPassword("password", pw); err != nil {
			return err
		}
		if cmd.PasswordHash, err = s.hash(r.Context(), pw); err != nil {
			return err
		}
	}
	if cmd.EmailIndex, err = s.emailIndex(r.Context(), c.p.Realm, in.Email); err != nil {
		return err
	}
	key, err := s.dataKey(r.Context(), c.p.Realm, cmd.ID, true)
	if err != nil {
		return err
	}
	if cmd.Sealed, err = sealPersonal(key, c.p.Realm, cmd.ID, personal{Email: in.Email, Name: in.Name}); err != nil {
		return err
	}
	res, err := c.execute(cmd)
	if err != nil {
		return err
	}
	return c.answer(http.StatusCreated, res, map[string]any{
		"id": cmd.ID, "hrn": iam.UserHRN(c.p.Realm, cmd.ID), "email": in.Email, "name": in.Name, "status": iam.StatusActive})
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreateApp{})
	if err != nil {
		return err
	}
	var in struct {
		Name         string   `json:"name"`
		RedirectURIs []string `json:"redirectUris"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd := iam.CreateApp{ID: c.newID("a", 16, "app"), Name: in.Name, RedirectURIs: in.RedirectURIs}
	return c.run(cmd, http.StatusCreated, map[string]any{
		"id": cmd.ID, "hrn": iam.AppHRN(c.p.Realm, cmd.ID), "name": in.Name, "redirectUris": in.RedirectURIs, "status": iam.StatusActive})
}

// patchApp serves PATCH /v1/apps/{id}: the app's status (as patchUser a user's), or
// its default project (a project HRN; null or "" clears it). Each is its
// own command, so a request changes one of them.
func (s *Server) patchApp(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if p.ID != id {
		// Which permission is needed shows only in the body; a caller that
		// holds neither is refused before the body is judged.
		err := s.latest(r.Context(), func(st *iam.State) error {
			if iam.Authorize(st, p.Realm, p.ID, iam.SetIdentityStatus{ID: id}) == nil {
				return nil
			}
			return iam.Authorize(st, p.Realm, p.ID, iam.SetDefaultProject{App: id})
		})
		if err != nil {
			return err
		}
	}
	c, err := s.beginWrite(w, r, nil)
	if err != nil {
		return err
	}
	var in struct {
		Status iam.IdentityStatus `json:"status"`
		// Raw, to tell null (clear it) from absent (leave it).
		DefaultProject json.RawMessage `json:"defaultProject"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	if in.DefaultProject == nil {
		return c.run(iam.SetIdentityStatus{ID: id, Status: in.Status, At: s.now()}, http.StatusOK, map[string]any{"id": id, "status": in.Status})
	}
	if in.Status != "" {
		return iam.FieldErrorf("defaultProject", "is changed by a request of its own, not together with status")
	}
	var hrn *string
	if err := json.Unmarshal(in.DefaultProject, &hrn); err != nil {
		return iam.FieldErrorf("defaultProject", "must be a project HRN, \"\" or null")
	}
	var project string
	if hrn != nil && *hrn != "" {
		if project, err = iam.ProjectIDFromHRN("defaultProject", p.Realm, *hrn); err != nil {
			return err
		}
	}
	body := map[string]any{"id": id, "defaultProject": nil}
	if project != "" {
		body["defaultProject"] = iam.ProjectHRN(p.Realm, project)
	}
	return c.run(iam.SetDefaultProject{App: id, Project: project}, http.StatusOK, body)
}

func (s *Server) deleteIdentity(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var skeleton iam.Command = iam.DeleteIdentity{ID: id}
	if principal(r).ID == id {
		skeleton = nil // a user may delete itself for good; Decide judges the rest
	}
	c, err := s.beginWrite(w, r, skeleton)
	if err != nil {
		return err
	}
	// Shred first: if the event then fails, a retry completes the deletion,
	// and no moment exists where the log says deleted but the key lives.
	if err := s.shredBeforeDelete(r.Context(), c.p.Realm, id); err != nil {
		return err
	}
	return c.run(iam.DeleteIdentity{ID: id}, http.StatusOK, map[string]any{"id": id, "deleted": true})
}

func (s *Server) addCredential(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("id")
	c, err := s.beginWrite(w, r, iam.AddCredential{App: app})
	if err != nil {
		return err
	}
	secret := auth.NewSecret()
	hash, err := s.hash(r.Context(), secret)
	if err != nil {
		return err
	}
	cmd := iam.AddCredential{App: app, CredentialID: c.newID("cred", 12, "cred"), ClientID: c.newID("", 20, "client"), SecretHash: hash}
	res, err := c.execute(cmd)
	if err != nil {
		return err
	}
	body := map[string]any{"credentialId": cmd.CredentialID, "clientId": cmd.ClientID, "clientSecret": secret}
	if res.Replayed {
		// The secret was shown once, to the first request; it is not kept.
		delete(body, "clientSecret")
	}
	return c.answer(http.StatusCreated, res, body)
}

func (s *Server) addAPIKey(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("id")
	c, err := s.beginWrite(w, r, iam.AddAPIKey{App: app})
	if err != nil {
		return err
	}
	keyID := c.newID("k", 16, "apikey")
	key := keyID + "." + auth.NewSecret()
	hash, err := s.hash(r.Context(), key)
	if err != nil {
		return err
	}
	res, err := c.execute(iam.AddAPIKey{App: app, KeyID: keyID, KeyHash: hash})
	if err != nil {
		return err
	}
	body := map[string]any{"keyId": keyID, "apiKey": key}
	if res.Replayed {
		delete(body, "apiKey")
	}
	return c.answer(http.StatusCreated, res, body)
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreateGroup{})
	if err != nil {
		return err
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd := iam.CreateGroup{ID: c.newID("g", 16, "group"), Name: in.Name}
	return c.run(cmd, http.StatusCreated, map[string]any{"id": cmd.ID, "hrn": iam.GroupHRN(c.p.Realm, cmd.ID), "name": in.Name})
}

func (s *Server) createPolicy(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreatePolicy{})
	if err != nil {
		return err
	}
	var in struct {
		Name       string          `json:"name"`
		Statements []iam.Statement `json:"statements"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd := iam.CreatePolicy{ID: c.newID("pol", 16, "policy"), Name: in.Name, Statements: in.Statements}
	return c.run(cmd, http.StatusCreated, map[string]any{"id": cmd.ID, "hrn": iam.PolicyHRN(c.p.Realm, cmd.ID), "name": in.Name, "statements": in.Statements})
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreateProject{})
	if err != nil {
		return err
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd := iam.CreateProject{ID: c.newID("p", 12, "project"), Name: in.Name}
	return c.run(cmd, http.StatusCreated, map[string]any{"id": cmd.ID, "hrn": iam.ProjectHRN(c.p.Realm, cmd.ID), "name": in.Name})
}

func (s *Server) setProjectMember(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.SetProjectMember{Project: r.PathValue("id"), Member: r.PathValue("memberId")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	var in struct {
		Policies []string `json:"policies"`
	}
	if err := c.decode(&in, true); err != nil {
		return err
	}
	cmd.Policies = in.Policies
	return c.run(cmd, http.StatusOK, nil)
}

func (s *Server) addProjectResource(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.AddProjectResource{Project: r.PathValue("id"), HRN: r.PathValue("hrn")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	var in struct {
		Relation iam.Relation `json:"relation"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	cmd.Relation = in.Relation
	return c.run(cmd, http.StatusOK, map[string]any{"hrn": cmd.HRN, "relation": cmd.Relation})
}

// pathWrite serves a write whose command is named by its path alone (an
// edge added or removed): no body, answered with its consistency token.
func (s *Server) pathWrite(build func(r *http.Request) iam.Command) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		cmd := build(r)
		c, err := s.beginWrite(w, r, cmd)
		if err != nil {
			return err
		}
		// It takes no body: none, or {}; anything else is refused, never
		// silently ignored.
		if err := c.decode(&struct{}{}, true); err != nil {
			return err
		}
		return c.run(cmd, http.StatusOK, nil)
	}
}
