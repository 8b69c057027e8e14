package api

import (
	"net"
	"net/http"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// People (issue 10 item 5): what a group grants, a user's own name and
// email, an invitee asking for its invitation again.

// groupPermissions serves GET /v1/groups/{id}/permissions with the
// evaluation of GET /v1/identities/{id}/permissions. An id that is no group
// of the caller's realm is a 404 before any permission is judged: a 403
// would tell an outsider nothing more, and a 404 is what every reader of
// the realm gets.
func (s *Server) groupPermissions(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	if err := s.latest(r.Context(), func(st *iam.State) error {
		_, err := st.GroupPermissions(p.Realm, id)
		return err
	}); err != nil {
		return err
	}
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, iam.GroupHRN(p.Realm, id), ""); err != nil {
		return err
	}
	return s.read(w, r, func(st *iam.State, _ *iam.Realm) (any, error) {
		perms, err := st.GroupPermissions(p.Realm, id)
		if err != nil {
			return nil, err
		}
		if perms == nil {
			perms = []iam.Permission{}
		}
		return map[string]any{"groupId": id, "permissions": perms}, nil
	})
}

// patchUser serves PATCH /v1/users/{id}: {status} as for apps, or {name,
// email} (either or both). A user edits itself without any permission;
// anyone else needs manageUser on the user. An id that is no user of the
// caller's realm is a 404 whoever asks.
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("id")
	var cur iam.Identity
	if err := s.latest(r.Context(), func(st *iam.State) error {
		u := st.Identity(p.Realm, id)
		if u == nil || u.Kind != iam.KindUser || u.Status == iam.StatusDeleted {
			return &iam.Error{Code: iam.ENotFound, Field: "id", Message: "user " + id + " not found"}
		}
		cur = *u
		return nil
	}); err != nil {
		return err
	}
	var skeleton iam.Command = iam.ChangePersonalData{User: id}
	if p.ID == id {
		skeleton = nil // self-service; Decide judges the rest
	}
	c, err := s.beginWrite(w, r, skeleton)
	if err != nil {
		return err
	}
	var in struct {
		Status *iam.IdentityStatus `json:"status"`
		Name   *string             `json:"name"`
		Email  *string             `json:"email"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	switch {
	case in.Status != nil && in.Email != nil:
		// Two commands would be two events, one of which may fail alone.
		return iam.FieldErrorf("email", "is changed in a request without status")
	case in.Status != nil && in.Name != nil:
		return iam.FieldErrorf("name", "is changed in a request without status")
	case in.Status != nil:
		return c.run(iam.SetIdentityStatus{ID: id, Status: *in.Status, At: s.now()}, http.StatusOK, map[string]any{"id": id, "status": *in.Status})
	case in.Name == nil && in.Email == nil:
		return iam.FieldErrorf("status", "is missing (or give name and/or email)")
	}
	// The new data is sealed under the user's own key, so deleting the user
	// still shreds it; a user created before sealing gets a key now.
	key, err := s.dataKey(r.Context(), p.Realm, id, len(cur.Sealed) == 0)
	if err != nil {
		return err
	}
	data := personal{Email: cur.Email, Name: cur.Name}
	if len(cur.Sealed) > 0 {
		if data, err = openPersonal(key, cur.Sealed, p.Realm, id); err != nil {
			return err
		}
	}
	if in.Name != nil {
		data.Name = *in.Name
	}
	if in.Email != nil {
		data.Email = *in.Email
	}
	if err := validPersonal(data.Email, data.Name); err != nil {
		return err
	}
	cmd := iam.ChangePersonalData{User: id, Was: cur.Sealed}
	if cmd.EmailIndex, err = s.emailIndex(r.Context(), p.Realm, data.Email); err != nil {
		return err
	}
	if cmd.Sealed, err = sealPersonal(key, p.Realm, id, data); err != nil {
		return err
	}
	return c.run(cmd, http.StatusOK, map[string]any{"id": id, "email": data.Email, "name": data.Name})
}

// invitationResendAccepted is the one answer of POST /v1/invitations/resend,
// whatever happened, so that it tells no one which emails are invited.
var invitationResendAccepted = map[string]any{"status": "if an invitation is pending for this email, a new one is on its way"}

// requestInvitationResend serves POST /v1/invitations/resend {realm, email}
// (public): the invitee asks for its invitation again. Every pending
// invitation of the email gets a new token and expiry, mailed to it. The
// answer is 202 with the same body whether or not one exists; the limit is
// per source address, as the caller is nobody yet.
func (s *Server) requestInvitationResend(w http.ResponseWriter, r *http.Request) {
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
	if ok, wait := s.idp.signInLimits.allow("resend/"+sourceAddress(r), now); !ok {
		retryAfter(w, wait)
		s.writeError(w, r, iam.Errorf(iam.ERateLimited, "too many invitation requests from this address"))
		return
	}
	var realmExists bool
	_ = s.latest(r.Context(), func(st *iam.State) error { realmExists = st.Realm(in.Realm) != nil; return nil })
	if !realmExists { // and no pepper is made for a made-up realm
		writeJSON(w, http.StatusAccepted, invitationResendAccepted)
		return
	}
	idx, err := s.emailIndex(r.Context(), in.Realm, in.Email)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var pending []iam.Invitation
	_ = s.latest(r.Context(), func(st *iam.State) error {
		if st.UserByEmailIndex(in.Realm, idx) != nil {
			return nil // a user has the email now: no invitation can be accepted
		}
		for _, id := range st.PendingInvitations(in.Realm, idx) {
			pending = append(pending, *st.Invitation(in.Realm, id))
		}
		return nil
	})
	cfg := s.identityConfig()
	for _, inv := range pending {
		key, err := s.dataKey(r.Context(), in.Realm, inv.UserID, false)
		if err != nil {
			continue // shredded: nobody to write to
		}
		p, err := openPersonal(key, inv.Sealed, in.Realm, inv.UserID)
		if err != nil {
			continue
		}
		token := in.Realm + "." + auth.NewSecret()
		cmd := iam.RenewInvitation{ID: inv.ID, TokenHash: iam.HashSecret(token), ExpiresAt: now.Add(cfg.InvitationTTL)}
		if _, err := s.system(r.Context(), in.Realm, now, cmd); err != nil {
			s.log.Warn("resend invitation", "realm", in.Realm, "invitation", inv.ID, "err", err, "correlationId", correlationID(r))
			continue
		}
		s.mailInvitation(r, p.Email, token, cfg)
	}
	writeJSON(w, http.StatusAccepted, invitationResendAccepted)
}

// sourceAddress is the host of the connection's peer: the key of limits on
// public requests of callers not known otherwise.
func sourceAddress(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
