package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// validPersonal judges an email and a name as CreateUser does, before they
// are sealed (the domain then sees only ciphertext).
func validPersonal(email, name string) error {
	if strings.TrimSpace(name) == "" || utf8.RuneCountInString(name) > iam.MaxNameLength || !utf8.ValidString(name) {
		return iam.FieldErrorf("name", "must be valid UTF-8 of 1 to %d characters", iam.MaxNameLength)
	}
	for _, c := range name {
		if unicode.IsControl(c) {
			return iam.FieldErrorf("name", "must not contain control characters")
		}
	}
	if len(email) > 254 {
		return iam.FieldErrorf("email", "must be at most 254 characters")
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return iam.FieldErrorf("email", "%q is not an email address", email)
	}
	return nil
}

func validPassword(field, pw string) error {
	if utf8.RuneCountInString(pw) < minPasswordLength || len(pw) > maxPasswordBytes {
		return iam.FieldErrorf(field, "must have at least %d characters and at most %d bytes", minPasswordLength, maxPasswordBytes)
	}
	return nil
}

// shredBeforeDelete destroys a user's data key before the user's deletion is
// written (apps hold no personal data).
func (s *Server) shredBeforeDelete(ctx context.Context, realm, id string) error {
	var sealed bool
	_ = s.latest(ctx, func(st *iam.State) error {
		if u := st.Identity(realm, id); u != nil && u.Kind == iam.KindUser && u.Status != iam.StatusDeleted {
			sealed = len(u.Sealed) > 0
		}
		return nil
	})
	if !sealed {
		return nil
	}
	return s.destroyPersonal(ctx, realm, id)
}

// readBody reads a small JSON body strictly.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return jsonError(err)
	}
	return decodeStrict(body, v)
}

// changePassword serves PUT /v1/users/{id}/password: the user itself, with
// its current password.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if p.ID != id {
		return iam.Errorf(iam.EPermissionDenied, "a password is changed by its user only (an admin may send a reset)")
	}
	var in struct {
		CurrentPassword string `json:"currentPassword"`
		NewPassword     string `json:"newPassword"`
	}
	if err := readBody(w, r, &in); err != nil {
		return err
	}
	if err := validPassword("newPassword", in.NewPassword); err != nil {
		return err
	}
	if ok, wait := s.idp.signInLimits.allow("user/"+p.Realm+"/"+id, s.cfg.Now()); !ok {
		retryAfter(w, wait)
		return iam.Errorf(iam.ERateLimited, "too many attempts for this account")
	}
	var old string
	_ = s.latest(r.Context(), func(st *iam.State) error {
		if u := st.Identity(p.Realm, id); u != nil {
			old = u.PasswordHash
		}
		return nil
	})
	if old == "" {
		return &iam.Error{Code: iam.EPermissionDenied, Field: "currentPassword", Message: "the current password is wrong"}
	}
	ok, err := s.verifySecret(r.Context(), in.CurrentPassword, old)
	if errors.Is(err, errHashBusy) {
		return err
	}
	if err != nil || !ok {
		return &iam.Error{Code: iam.EPermissionDenied, Field: "currentPassword", Message: "the current password is wrong"}
	}
	hash, err := s.hash(r.Context(), in.NewPassword)
	if err != nil {
		return err
	}
	res, err := s.system(r.Context(), p.Realm, s.now(), iam.ChangePassword{User: id, OldHash: old, NewHash: hash, At: s.now()})
	if err != nil {
		return err
	}
	return answerToken(w, res.Seq, map[string]any{"id": id})
}

func answerToken(w http.ResponseWriter, seq uint64, body map[string]any) error {
	tok := FormatToken(seq)
	body["consistencyToken"] = tok
	w.Header().Set("Consistency-Token", tok)
	writeJSON(w, http.StatusOK, body)
	return nil
}

// revokeTokens serves POST /v1/users/{id}/revokeTokens: every token issued
// to the identity until now is refused from the change on.
func (s *Server) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.beginWrite(w, r, iam.RevokeTokens{Identity: id})
	if err != nil {
		return err
	}
	return c.run(iam.RevokeTokens{Identity: id, At: s.now(), Reason: "revoked by " + c.p.ID}, http.StatusOK, map[string]any{"id": id})
}

// setCredentialStatus serves PATCH /v1/apps/{id}/credentials/{credentialId}
// {"status": "disabled"|"enabled"}.
func (s *Server) setCredentialStatus(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.SetCredentialStatus{App: r.PathValue("id"), CredentialID: r.PathValue("credentialId")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	if cmd.Disabled, err = decodeKeyStatus(c); err != nil {
		return err
	}
	return c.run(cmd, http.StatusOK, map[string]any{"credentialId": cmd.CredentialID, "status": statusWord(cmd.Disabled)})
}

// setAPIKeyStatus serves PATCH /v1/apps/{id}/apiKeys/{keyId}.
func (s *Server) setAPIKeyStatus(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.SetAPIKeyStatus{App: r.PathValue("id"), KeyID: r.PathValue("keyId")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	if cmd.Disabled, err = decodeKeyStatus(c); err != nil {
		return err
	}
	return c.run(cmd, http.StatusOK, map[string]any{"keyId": cmd.KeyID, "status": statusWord(cmd.Disabled)})
}

func decodeKeyStatus(c *writeCall) (bool, error) {
	var in struct {
		Status string `json:"status"`
	}
	if err := c.decode(&in, false); err != nil {
		return false, err
	}
	switch in.Status {
	case "disabled":
		return true, nil
	case "enabled":
		return false, nil
	}
	return false, iam.FieldErrorf("status", "must be \"enabled\" or \"disabled\"")
}

func statusWord(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}

// requestPasswordReset serves POST /v1/passwordResets {realm, email}. It
// answers 202 whether or not the account exists (no account discovery); the
// token goes only to the mail sender.
func (s *Server) requestPasswordReset(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Realm string `json:"realm"`
		Email string `json:"email"`
	}
	if err := readBody(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := iam.ValidID("realm", in.Realm); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	if ok, wait := s.idp.signInLimits.allow("reset/"+in.Realm+"/"+normalEmail(in.Email), now); !ok {
		retryAfter(w, wait)
		s.writeError(w, r, iam.Errorf(iam.ERateLimited, "too many reset requests for this account"))
		return
	}
	accepted := func() {
		writeJSON(w, http.StatusAccepted, map[string]any{"status": "if the account exists, a reset mail is on its way"})
	}
	user, _, err := s.findUser(r.Context(), in.Realm, in.Email)
	if err != nil || user == "" {
		if err != nil && iam.ErrorCode(err) != iam.ENotFound {
			s.writeError(w, r, err)
			return
		}
		accepted()
		return
	}
	token := in.Realm + "." + auth.NewSecret()
	cfg := s.identityConfig()
	if _, err := s.system(r.Context(), in.Realm, now, iam.RequestPasswordReset{User: user, TokenHash: iam.HashSecret(token), ExpiresAt: now.Add(cfg.ResetTokenTTL)}); err != nil {
		s.writeError(w, r, err)
		return
	}
	if cfg.Mail != nil {
		if err := cfg.Mail.Send(r.Context(), Mail{Kind: "passwordReset", To: in.Email, Subject: "Reset your password",
			Body: "Use this token within " + cfg.ResetTokenTTL.String() + " at POST /v1/passwordResets/confirm.", Token: token, At: now}); err != nil {
			s.log.Error("send reset mail", "realm", in.Realm, "user", user, "err", err)
		}
	}
	accepted()
}

// confirmPasswordReset serves POST /v1/passwordResets/confirm {token,
// newPassword}: single use, before expiry. Limited per source address, and
// the token is looked up before the new password is hashed, so guessing
// tokens costs no argon2id work (the writer judges the token again).
func (s *Server) confirmPasswordReset(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	if ok, wait := s.idp.signInLimits.allow("resetConfirm/"+sourceOf(r), now); !ok {
		retryAfter(w, wait)
		s.writeError(w, r, iam.Errorf(iam.ERateLimited, "too many reset confirmations from this address"))
		return
	}
	var in struct {
		Token       string `json:"token"`
		NewPassword string `json:"newPassword"`
	}
	if err := readBody(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := validPassword("newPassword", in.NewPassword); err != nil {
		s.writeError(w, r, err)
		return
	}
	realm, _, ok := strings.Cut(in.Token, ".")
	if !ok || iam.ValidID("token", realm) != nil {
		s.writeError(w, r, iam.FieldErrorf("token", "not a reset token"))
		return
	}
	tokenHash := iam.HashSecret(in.Token)
	valid := false
	if err := s.latest(r.Context(), func(st *iam.State) error {
		valid = st.ResetTokenValid(realm, tokenHash, now)
		return nil
	}); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !valid {
		s.writeError(w, r, iam.ErrResetTokenInvalid)
		return
	}
	hash, err := s.hash(r.Context(), in.NewPassword)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.system(r.Context(), realm, now, iam.ResetPassword{TokenHash: tokenHash, NewHash: hash, At: now})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	_ = answerToken(w, res.Seq, map[string]any{"reset": true})
}

// findUser finds a user by email on the latest state: by the blind index,
// else (users created before sealing) by the plain email.
func (s *Server) findUser(ctx context.Context, realm, email string) (user, hash string, err error) {
	// The realm must exist before a pepper is made for it: no caller can
	// fill the vault with peppers of made-up realms.
	if err := s.latest(ctx, func(st *iam.State) error {
		if st.Realm(realm) == nil {
			return iam.Errorf(iam.ENotFound, "realm %s not found", realm)
		}
		return nil
	}); err != nil {
		return "", "", err
	}
	idx, err := s.emailIndex(ctx, realm, email)
	if err != nil {
		return "", "", err
	}
	err = s.latest(ctx, func(st *iam.State) error {
		if st.Realm(realm) == nil {
			return iam.Errorf(iam.ENotFound, "realm %s not found", realm)
		}
		u := st.UserByEmailIndex(realm, idx)
		if u == nil {
			u = st.UserByEmail(realm, email)
		}
		if u != nil && u.Kind == iam.KindUser && u.Status != iam.StatusDeleted {
			user, hash = u.ID, u.PasswordHash
		}
		return nil
	})
	return user, hash, err
}
