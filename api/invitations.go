package api

import (
	"net/http"
	"strings"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// Invitations: an OrgAdmin or OrgInviter invites a person by email with at
// most 5 roles and 5 groups; the token goes by mail (never to the log);
// "resend" renews token and expiry; accepting creates the user. The email is
// sealed under the data key of the user-to-be, so deleting that user (or
// purging the key of an invitation never accepted) shreds it too.

// createInvitation serves POST /v1/invitations {email, roles?, groups?}.
func (s *Server) createInvitation(w http.ResponseWriter, r *http.Request) error {
	c, err := s.beginWrite(w, r, iam.CreateInvitation{})
	if err != nil {
		return err
	}
	var in struct {
		Email  string   `json:"email"`
		Roles  []string `json:"roles"`
		Groups []string `json:"groups"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	if err := validPersonal(in.Email, "invitee"); err != nil {
		return err
	}
	// Whether the inviter may hand out these roles and groups is judged by
	// the writer (CreateInvitation), on the state it decides on.
	id, user := c.newID("inv", 16, "invitation"), c.newID("u", 16, "invitee")
	token := c.p.Realm + "." + auth.NewSecret()
	now := s.now()
	cfg := s.identityConfig()
	inv := iam.Invitation{UserID: user, Roles: in.Roles, Groups: in.Groups, TokenHash: iam.HashSecret(token), ExpiresAt: now.Add(cfg.InvitationTTL), InvitedBy: c.p.ID}
	if inv.EmailIndex, err = s.emailIndex(r.Context(), c.p.Realm, in.Email); err != nil {
		return err
	}
	key, err := s.dataKey(r.Context(), c.p.Realm, user, true)
	if err != nil {
		return err
	}
	if inv.Sealed, err = sealPersonal(key, c.p.Realm, user, personal{Email: in.Email}); err != nil {
		return err
	}
	res, err := c.execute(iam.CreateInvitation{ID: id, Invitation: inv})
	if err != nil {
		return err
	}
	if !res.Replayed {
		s.mailInvitation(r, in.Email, token, cfg)
	}
	return c.answer(http.StatusCreated, res, map[string]any{"id": id, "userId": user, "expiresAt": inv.ExpiresAt, "roles": orEmpty(in.Roles), "groups": orEmpty(in.Groups)})
}

func (s *Server) mailInvitation(r *http.Request, to, token string, cfg IdentityConfig) {
	if cfg.Mail == nil || simulationFrom(r.Context()) != nil {
		return
	}
	if err := cfg.Mail.Send(r.Context(), Mail{Kind: "invitation", To: to, Subject: "You are invited",
		Body: "Accept within " + cfg.InvitationTTL.String() + " at POST /v1/invitations/accept.", Token: token, At: s.now()}); err != nil {
		s.log.Error("send invitation mail", "err", err)
	}
}

// resendInvitation serves POST /v1/invitations/{id}/resend: a new token and
// expiry, mailed again; the old token stops working.
func (s *Server) resendInvitation(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.beginWrite(w, r, iam.RenewInvitation{ID: id})
	if err != nil {
		return err
	}
	var to string
	var inv iam.Invitation
	_ = s.latest(r.Context(), func(st *iam.State) error {
		if p := st.Invitation(c.p.Realm, id); p != nil {
			inv = *p
		}
		return nil
	})
	if inv.UserID != "" {
		if key, err := s.dataKey(r.Context(), c.p.Realm, inv.UserID, false); err == nil {
			if p, err := openPersonal(key, inv.Sealed, c.p.Realm, inv.UserID); err == nil {
				to = p.Email
			}
		}
	}
	token := c.p.Realm + "." + auth.NewSecret()
	cfg := s.identityConfig()
	cmd := iam.RenewInvitation{ID: id, TokenHash: iam.HashSecret(token), ExpiresAt: s.now().Add(cfg.InvitationTTL)}
	res, err := c.execute(cmd)
	if err != nil {
		return err
	}
	if !res.Replayed && to != "" {
		s.mailInvitation(r, to, token, cfg)
	}
	return c.answer(http.StatusOK, res, map[string]any{"id": id, "expiresAt": cmd.ExpiresAt})
}

// getInvitation serves GET /v1/invitations/{id} (no token, no email).
func (s *Server) getInvitation(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if err := s.authorizeRead(r.Context(), p, iam.ActionList, iam.RealmHRN(p.Realm), ""); err != nil {
		return err
	}
	return s.read(w, r, func(st *iam.State, realm *iam.Realm) (any, error) {
		inv := st.Invitation(realm.ID, id)
		if inv == nil {
			return nil, &iam.Error{Code: iam.ENotFound, Field: "id", Message: "invitation " + id + " not found"}
		}
		return map[string]any{"id": id, "userId": inv.UserID, "roles": orEmpty(inv.Roles), "groups": orEmpty(inv.Groups),
			"expiresAt": inv.ExpiresAt, "accepted": inv.Accepted, "invitedBy": inv.InvitedBy}, nil
	})
}

// acceptInvitation serves POST /v1/invitations/accept {token, name,
// password} (public: the token is the proof).
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token    string `json:"token"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	err := readBody(w, r, &in)
	realm, _, ok := strings.Cut(in.Token, ".")
	switch {
	case err != nil:
	case !ok || iam.ValidID("token", realm) != nil:
		err = iam.FieldErrorf("token", "not an invitation token")
	default:
		err = validPassword("password", in.Password)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	var inv iam.Invitation
	_ = s.latest(r.Context(), func(st *iam.State) error {
		if p := st.InvitationByToken(realm, iam.HashSecret(in.Token)); p != nil {
			inv = *p
		}
		return nil
	})
	if inv.UserID == "" {
		s.writeError(w, r, iam.FieldErrorf("token", "the invitation is unknown, used or expired"))
		return
	}
	key, err := s.dataKey(r.Context(), realm, inv.UserID, false)
	var p personal
	if err == nil {
		p, err = openPersonal(key, inv.Sealed, realm, inv.UserID)
	}
	if err != nil {
		s.writeError(w, r, iam.FieldErrorf("token", "the invitation can no longer be accepted"))
		return
	}
	if err := validPersonal(p.Email, in.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	p.Name = in.Name
	sealed, err := sealPersonal(key, realm, inv.UserID, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	hash, err := s.hash(r.Context(), in.Password)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.system(r.Context(), realm, now, iam.AcceptInvitation{TokenHash: iam.HashSecret(in.Token), Sealed: sealed, PasswordHash: hash, At: now})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	_ = answerToken(w, res.Seq, map[string]any{"id": inv.UserID, "hrn": iam.UserHRN(realm, inv.UserID), "email": p.Email, "name": p.Name})
}
