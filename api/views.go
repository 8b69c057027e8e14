package api

import (
	"context"
	"encoding/base64"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"

	iam "github.com/iam-project/iam"
)

// authorizeRead allows the caller to read hrn, or itself.
func (s *Server) authorizeRead(ctx context.Context, p Principal, action, hrn, self string) error {
	if self != "" && self == p.ID {
		return nil
	}
	return s.latest(ctx, func(st *iam.State) error { return iam.AuthorizeAction(st, p.Realm, p.ID, action, hrn) })
}

// read runs fn on the caller's region's replica at least as fresh as the
// request asks and the server has acknowledged, or with ?at=TOKEN on the
// state at exactly that token, and answers its result.
func (s *Server) read(w http.ResponseWriter, r *http.Request, fn func(st *iam.State, realm *iam.Realm) (any, error)) error {
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	c, err := s.readConsistency(r)
	if err != nil {
		return err
	}
	past := r.URL.Query().Has("at")
	if past {
		if c.Token, err = ParseToken("at", r.URL.Query().Get("at")); err != nil {
			return err
		}
		c.Mode = iam.AtExactSnapshot
	}
	p := principal(r)
	var out any
	seq, err := rep.Read(r.Context(), c, func(st *iam.State) error {
		// The caller was authenticated on a state possibly older than this
		// one: an identity deactivated in between reads nothing. A past
		// state is not where the caller stands: it was authenticated and
		// authorized now, and may not have existed then.
		if id := st.Identity(p.Realm, p.ID); !past && (id == nil || id.Status != iam.StatusActive) {
			return iam.Errorf(iam.EUnauthenticated, "the caller's identity is not active")
		}
		realm := st.Realm(p.Realm)
		if realm == nil {
			return iam.Errorf(iam.ENotFound, "realm %s not found", p.Realm)
		}
		var err error
		out, err = fn(st, realm)
		return err
	})
	if err != nil {
		return err
	}
	w.Header().Set("Consistency-Token", FormatToken(seq))
	w.Header().Set("Iam-Region", rep.Region())
	writeJSON(w, http.StatusOK, out)
	return nil
}

type identityView struct {
	ID           string             `json:"id"`
	HRN          string             `json:"hrn"`
	Kind         iam.IdentityKind   `json:"kind"`
	Status       iam.IdentityStatus `json:"status"`
	Email        string             `json:"email,omitempty"`
	Name         string             `json:"name,omitempty"`
	RedirectURIs []string           `json:"redirectUris,omitempty"`
	Groups       []string           `json:"groups"`
	Roles        []string           `json:"roles"`
	Policies     []string           `json:"policies"`
	Projects     []string           `json:"projects"`
	Credentials  []credentialView   `json:"credentials,omitempty"`
	APIKeys      []string           `json:"apiKeys,omitempty"`
	// DefaultProject is an app's default project HRN, if it has one.
	DefaultProject string `json:"defaultProject,omitempty"`
}

type credentialView struct {
	ID       string `json:"id"`
	ClientID string `json:"clientId"`
}

func viewIdentity(realm string, id *iam.Identity) identityView {
	app := id.AppState()
	v := identityView{ID: id.ID, Kind: id.Kind, Status: id.Status, Email: id.Email, Name: id.Name, RedirectURIs: app.RedirectURIs,
		Groups: id.Groups.Sorted(), Roles: id.Roles.Sorted(), Policies: id.Policies.Sorted(), Projects: id.Projects.Sorted()}
	if id.Kind == iam.KindApp {
		v.HRN = iam.AppHRN(realm, id.ID)
		for _, cid := range sortedKeys(app.Credentials) {
			v.Credentials = append(v.Credentials, credentialView{ID: cid, ClientID: app.Credentials[cid].ClientID})
		}
		v.APIKeys = sortedKeys(app.APIKeys)
		if app.DefaultProject != "" {
			v.DefaultProject = iam.ProjectHRN(realm, app.DefaultProject)
		}
	} else {
		v.HRN = iam.UserHRN(realm, id.ID)
	}
	return v
}

type groupView struct {
	ID       string   `json:"id"`
	HRN      string   `json:"hrn"`
	Name     string   `json:"name"`
	Members  []string `json:"members"`
	Policies []string `json:"policies"`
	Projects []string `json:"projects"`
}

func viewGroup(realm string, g *iam.Group) groupView {
	return groupView{g.ID, iam.GroupHRN(realm, g.ID), g.Name, g.Members.Sorted(), g.Policies.Sorted(), g.Projects.Sorted()}
}

type policyView struct {
	ID         string          `json:"id"`
	HRN        string          `json:"hrn"`
	Name       string          `json:"name"`
	Statements []iam.Statement `json:"statements"`
	AttachedTo []string        `json:"attachedTo"`
}

func viewPolicy(realm string, p *iam.Policy) policyView {
	return policyView{p.ID, iam.PolicyHRN(realm, p.ID), p.Name, p.Statements, p.AttachedTo.Sorted()}
}

type projectView struct {
	ID        string             `json:"id"`
	HRN       string             `json:"hrn"`
	Name      string             `json:"name"`
	Members   []projectMemberRef `json:"members"`
	Resources []projectResource  `json:"resources"`
}

type projectMemberRef struct {
	ID       string   `json:"id"`
	Policies []string `json:"policies"`
}

type projectResource struct {
	HRN      string       `json:"hrn"`
	Relation iam.Relation `json:"relation"`
}

func viewProject(realm string, p *iam.Project) projectView {
	v := projectView{ID: p.ID, HRN: iam.ProjectHRN(realm, p.ID), Name: p.Name, Members: []projectMemberRef{}, Resources: []projectResource{}}
	for _, m := range sortedKeys(p.Members) {
		v.Members = append(v.Members, projectMemberRef{m, p.Members[m]})
	}
	for _, h := range sortedKeys(p.Resources) {
		v.Resources = append(v.Resources, projectResource{h, p.Resources[h]})
	}
	return v
}

// sortedKeys is m's keys in order, never nil: an empty set is [] in JSON,
// not null.
func sortedKeys[V any](m map[string]V) []string {
	if out := slices.Sorted(maps.Keys(m)); out != nil {
		return out
	}
	return []string{}
}

// kind describes one entity kind for the generic GET and list handlers.
type kind struct {
	name string // for messages
	hrn  func(realm, id string) string
	// get returns the view of id, or nil.
	get func(realm *iam.Realm, id string) any
	// ids lists every id of the kind.
	ids func(realm *iam.Realm) []string
}

func identityKind(k iam.IdentityKind) kind {
	hrn := iam.UserHRN
	if k == iam.KindApp {
		hrn = iam.AppHRN
	}
	return kind{
		name: string(k), hrn: hrn,
		get: func(r *iam.Realm, id string) any {
			if i := r.Identities.Get(id); i != nil && i.Kind == k && i.Status != iam.StatusDeleted {
				return viewIdentity(r.ID, i)
			}
			return nil
		},
		ids: func(r *iam.Realm) []string {
			var out []string
			for id, i := range r.Identities.All() {
				if i.Kind == k && i.Status != iam.StatusDeleted {
					out = append(out, id)
				}
			}
			sort.Strings(out)
			return out
		},
	}
}

var kinds = map[string]kind{
	"users": identityKind(iam.KindUser),
	"apps":  identityKind(iam.KindApp),
	"groups": {name: "group", hrn: iam.GroupHRN,
		get: func(r *iam.Realm, id string) any {
			if g := r.Groups[id]; g != nil {
				return viewGroup(r.ID, g)
			}
			return nil
		},
		ids: func(r *iam.Realm) []string { return sortedKeys(r.Groups) }},
	"policies": {name: "policy", hrn: iam.PolicyHRN,
		get: func(r *iam.Realm, id string) any {
			if p := r.Policies[id]; p != nil {
				return viewPolicy(r.ID, p)
			}
			return nil
		},
		ids: func(r *iam.Realm) []string { return sortedKeys(r.Policies) }},
	"projects": {name: "project", hrn: iam.ProjectHRN,
		get: func(r *iam.Realm, id string) any {
			if p := r.Projects[id]; p != nil {
				return viewProject(r.ID, p)
			}
			return nil
		},
		ids: func(r *iam.Realm) []string { return sortedKeys(r.Projects) }},
}

func (s *Server) getEntity(k kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, id := principal(r), r.PathValue("id")
		if err := s.authorizeRead(r.Context(), p, iam.ActionRead, k.hrn(p.Realm, id), id); err != nil {
			return err
		}
		return s.read(w, r, func(_ *iam.State, realm *iam.Realm) (any, error) {
			if v := k.get(realm, id); v != nil {
				return s.reveal(r.Context(), realm, v), nil // sealed personal data: personal.go
			}
			return nil, &iam.Error{Code: iam.ENotFound, Field: "id", Message: k.name + " " + id + " not found"}
		})
	}
}

const (
	defaultPageSize = 50
	maxPageSize     = 100
)

func (s *Server) listEntities(k kind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := principal(r)
		if err := s.authorizeRead(r.Context(), p, iam.ActionList, iam.RealmHRN(p.Realm), ""); err != nil {
			return err
		}
		limit := defaultPageSize
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxPageSize {
				return iam.FieldErrorf("limit", "must be a whole number from 1 to %d", maxPageSize)
			}
			limit = n
		}
		after := ""
		if t := r.URL.Query().Get("pageToken"); t != "" {
			b, err := base64.RawURLEncoding.DecodeString(t)
			if err != nil || iam.ValidID("pageToken", string(b)) != nil {
				return iam.FieldErrorf("pageToken", "not a page token from this API")
			}
			after = string(b)
		}
		return s.read(w, r, func(_ *iam.State, realm *iam.Realm) (any, error) {
			ids := k.ids(realm)
			start := sort.SearchStrings(ids, after)
			if start < len(ids) && ids[start] == after {
				start++
			}
			end := min(start+limit, len(ids))
			items := make([]any, 0, end-start)
			for _, id := range ids[start:end] {
				items = append(items, s.reveal(r.Context(), realm, k.get(realm, id)))
			}
			out := map[string]any{"items": items}
			if end < len(ids) {
				out["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte(ids[end-1]))
			}
			return out, nil
		})
	}
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"items": iam.Roles(principal(r).Realm)})
	return nil
}

func (s *Server) permissions(w http.ResponseWriter, r *http.Request) error {
	p, id := principal(r), r.PathValue("identityId")
	var hrn string
	_ = s.latest(r.Context(), func(st *iam.State) error { hrn = st.IdentityHRN(p.Realm, id); return nil })
	if err := s.authorizeRead(r.Context(), p, iam.ActionRead, hrn, id); err != nil {
		return err
	}
	return s.read(w, r, func(st *iam.State, _ *iam.Realm) (any, error) {
		perms, err := st.Permissions(p.Realm, id)
		if err != nil {
			return nil, err
		}
		if perms == nil {
			perms = []iam.Permission{}
		}
		return map[string]any{"identityId": id, "permissions": perms}, nil
	})
}
