package api

import (
	"net/http"

	iam "github.com/iam-project/iam"
)

// shareRoutes registers sharing of apps and the linkability of resources
// (issue 10, "Sharing and linking"): whoever manages an app shares it,
// whoever may read it lists its shares; a resource's home project says
// whether it may be linked elsewhere.
func (s *Server) shareRoutes(h handle) {
	h("PUT /v1/apps/{id}/shares/{shareeId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.ShareApp{App: r.PathValue("id"), With: r.PathValue("shareeId")}
	}))
	h("DELETE /v1/apps/{id}/shares/{shareeId}", false, s.pathWrite(func(r *http.Request) iam.Command {
		return iam.UnshareApp{App: r.PathValue("id"), With: r.PathValue("shareeId")}
	}))
	h("GET /v1/apps/{id}/shares", true, s.listShares)
	h("PATCH /v1/projects/{id}/resources/{hrn...}", false, s.setResourceLinkable)
}

// listShares serves GET /v1/apps/{id}/shares, in the shape of the managers'
// list.
func (s *Server) listShares(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	app := r.PathValue("id")
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, iam.AppHRN(p.Realm, app), app); err != nil {
		return err
	}
	return s.read(w, r, func(st *iam.State, realm *iam.Realm) (any, error) {
		ids, ok := st.Shares(p.Realm, app)
		if !ok {
			return nil, &iam.Error{Code: iam.ENotFound, Field: "id", Message: "app " + app + " not found"}
		}
		out := make([]managerView, 0, len(ids))
		for _, id := range ids {
			v := managerView{ID: id, Kind: "group"}
			if i := realm.Identities.Get(id); i != nil {
				v.Kind = string(i.Kind)
			}
			out = append(out, v)
		}
		return map[string]any{"id": app, "shares": out}, nil
	})
}

// setResourceLinkable serves PATCH /v1/projects/{id}/resources/{hrn}
// {linkable}: the field is required, so that an empty body changes nothing
// by accident.
func (s *Server) setResourceLinkable(w http.ResponseWriter, r *http.Request) error {
	cmd := iam.SetResourceLinkable{Project: r.PathValue("id"), HRN: r.PathValue("hrn")}
	c, err := s.beginWrite(w, r, cmd)
	if err != nil {
		return err
	}
	var in struct {
		Linkable *bool `json:"linkable"`
	}
	if err := c.decode(&in, false); err != nil {
		return err
	}
	if in.Linkable == nil {
		return iam.FieldErrorf("linkable", "must be true or false")
	}
	cmd.Linkable = *in.Linkable
	return c.run(cmd, http.StatusOK, map[string]any{"hrn": cmd.HRN, "linkable": cmd.Linkable})
}
