package api

import (
	"net/http"

	iam "github.com/iam-project/iam"
)

// managedPaths maps the path segment of each kind of managed entity to it.
var managedPaths = map[string]iam.ManagedKind{
	"apps":     iam.ManagedApp,
	"groups":   iam.ManagedGroup,
	"projects": iam.ManagedProject,
}

// managerRoutes registers the managers of apps, groups and projects
// (issue 10, "Ownership"): a manager, or a role reaching every one of the
// kind, adds and removes managers; whoever may read the entity lists them.
func (s *Server) managerRoutes(h handle) {
	for path, kind := range managedPaths {
		ref := func(r *http.Request) iam.ManagedRef { return iam.ManagedRef{Kind: kind, ID: r.PathValue("id")} }
		h("PUT /v1/"+path+"/{id}/managers/{managerId}", false, s.pathWrite(func(r *http.Request) iam.Command {
			return iam.AddManager{Entity: ref(r), Manager: r.PathValue("managerId")}
		}))
		h("DELETE /v1/"+path+"/{id}/managers/{managerId}", false, s.pathWrite(func(r *http.Request) iam.Command {
			return iam.RemoveManager{Entity: ref(r), Manager: r.PathValue("managerId")}
		}))
		h("GET /v1/"+path+"/{id}/managers", true, func(w http.ResponseWriter, r *http.Request) error {
			return s.listManagers(w, r, ref(r))
		})
	}
}

type managerView struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // user, app or group
}

// listManagers serves GET /v1/{apps|groups|projects}/{id}/managers.
func (s *Server) listManagers(w http.ResponseWriter, r *http.Request, m iam.ManagedRef) error {
	p := principal(r)
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, m.HRN(p.Realm), m.ID); err != nil {
		return err
	}
	return s.read(w, r, func(st *iam.State, realm *iam.Realm) (any, error) {
		ids, ok := st.Managers(p.Realm, m)
		if !ok {
			return nil, &iam.Error{Code: iam.ENotFound, Field: "id", Message: string(m.Kind) + " " + m.ID + " not found"}
		}
		out := make([]managerView, 0, len(ids))
		for _, id := range ids {
			v := managerView{ID: id, Kind: "group"}
			if i := realm.Identities.Get(id); i != nil {
				v.Kind = string(i.Kind)
			}
			out = append(out, v)
		}
		return map[string]any{"id": m.ID, "kind": m.Kind, "managers": out}, nil
	})
}
