package api

import (
	"net/http"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// ActionManageSigningKeys is the permission to rotate and revoke the token
// signing keys (on the realm's HRN; OrgAdmin has it).
const ActionManageSigningKeys = iam.ActionManageSigningKeys

// rotateKeys makes a new signer, prunes keys whose tokens have all expired,
// and persists the set. The caller holds s.idp.mu.
func (m *hubMode) rotateKeys(now time.Time) error {
	if err := m.Keys.Rotate(now, m.s.cfg.MaxTokenLifetime); err != nil {
		return err
	}
	m.Keys.Prune(now)
	if m.keyFile != nil {
		if err := m.keyFile.Save(m.Keys); err != nil {
			return err
		}
	}
	m.s.log.Info("signing key rotated", "kid", m.Keys.SigningKID())
	return nil
}

func (m *regionMode) rotateKeys(time.Time) error {
	return iam.Errorf(iam.EUnavailable, "this server does not sign tokens; rotate on the hub")
}

// maybeRotate rotates keys when the signer is older than KeyRotation; it
// runs on the token paths, so an idle server rotates on its next token.
func (s *Server) maybeRotate(keys *auth.KeySet, now time.Time) {
	infos := keys.Keys()
	if len(infos) == 0 || !infos[0].NotAfter.IsZero() || now.Sub(infos[0].Created) >= s.identityConfig().KeyRotation {
		s.idp.mu.Lock()
		defer s.idp.mu.Unlock()
		infos = keys.Keys() // another request may have rotated meanwhile
		if len(infos) == 0 || !infos[0].NotAfter.IsZero() || now.Sub(infos[0].Created) >= s.idp.cfg.KeyRotation {
			if err := s.mode.rotateKeys(now); err != nil {
				s.log.Error("rotate signing key", "err", err)
			}
		}
	}
}

type signingKeyView struct {
	KID      string     `json:"kid"`
	Created  time.Time  `json:"created"`
	NotAfter *time.Time `json:"notAfter,omitempty"`
	Signing  bool       `json:"signing"`
}

func keysView(keys *auth.KeySet) map[string]any {
	var out []signingKeyView
	for i, k := range keys.Keys() {
		v := signingKeyView{KID: k.KID, Created: k.Created, Signing: i == 0 && k.NotAfter.IsZero()}
		if !k.NotAfter.IsZero() {
			na := k.NotAfter
			v.NotAfter = &na
		}
		out = append(out, v)
	}
	return map[string]any{"keys": out}
}

func (s *Server) authorizeKeys(r *http.Request) error {
	p := principal(r)
	return s.latest(r.Context(), func(st *iam.State) error {
		return iam.AuthorizeAction(st, p.Realm, p.ID, ActionManageSigningKeys, iam.RealmHRN(p.Realm))
	})
}

// listSigningKeys serves GET /v1/signingKeys (public parts only).
func (s *Server) listSigningKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeKeys(r); err != nil {
		return err
	}
	keys, err := s.mode.signer()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(keys))
	return nil
}

// rotateSigningKeys serves POST /v1/signingKeys/rotate: a new key signs from
// now on; the old ones stay in JWKS until every token they signed expired.
func (s *Server) rotateSigningKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeKeys(r); err != nil {
		return err
	}
	keys, err := s.mode.signer()
	if err != nil {
		return iam.Errorf(iam.EUnavailable, "this server does not sign tokens; rotate on the hub")
	}
	s.idp.mu.Lock()
	err = s.mode.rotateKeys(s.cfg.Now())
	s.idp.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(keys))
	return nil
}
