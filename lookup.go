package iam

import (
	"container/heap"
	"iter"
)

// Subject is an identity that a lookup found allowed, with the reason its
// check gives.
type Subject struct {
	ID     string       `json:"id"`
	Kind   IdentityKind `json:"kind"`
	Reason string       `json:"reason"`
}

// LookupSubjects answers "who can": the active identities of realm that
// State.Check allows to do action on resource (scope: a project id, "" for
// unscoped, as for a check), each with the check's reason. It returns the
// first limit of them with an id greater than after, in order of id, and
// whether more follow. An unknown realm or project finds nobody.
//
// The answer is exactly that of a check of every identity, but only the
// identities that something matching could allow are checked: the holders of
// the realm policies and plans with an allowing statement that matches
// (directly or through a group), of roles that match, the managers and
// sharees of the resource, and, scoped, the project's members. Everyone else
// has nothing that allows, and a check of them denies.
func (s *State) LookupSubjects(realm, action, resource, scope, after string, limit int) ([]Subject, bool) {
	r := s.realms[realm]
	if r == nil || limit <= 0 {
		return nil, false
	}
	var out []Subject
	q := CheckRequest{Realm: realm, Action: action, Resource: resource, Scope: scope}
	// Checked in order of id, a page stops at its limit: the cost is that
	// of gathering the candidates plus a check per candidate up to the
	// page's end, not a check of every holder.
	for id := range ascending(r.lookupCandidates(action, resource, scope, after)) {
		q.Subject = id
		if d := s.Check(q); d.Allowed {
			if len(out) == limit {
				return out, true
			}
			out = append(out, Subject{ID: id, Kind: r.Identities.Get(id).Kind, Reason: d.Reason()})
		}
	}
	return out, false
}

// lookupCandidates returns, in no order and perhaps more than once each, the
// identities with an id greater than after that some allowing grant could
// reach for the lookup: a superset of those the check allows.
func (r *Realm) lookupCandidates(action, resource, scope, after string) []string {
	var c []string
	add := func(id string) {
		if id > after {
			c = append(c, id)
		}
	}
	// holder adds an identity, or a group's members. It does not look the
	// identity up: grants name only identities and groups, the check
	// judges whether one still stands, and with 100k identities the
	// lookups cost more than the checks they would spare.
	holder := func(id string) {
		if g := r.Groups[id]; g != nil {
			for m := range g.Members.All() {
				add(m)
			}
			return
		}
		add(id)
	}
	placement := r.Resources[resource]
	if scope != "" {
		// Only the project's members (direct or through a group) are
		// reached by a scoped check, whatever their grants say.
		if p := r.Projects[scope]; p != nil && placement != nil && (placement.Home == scope || placement.Links.Has(scope)) {
			for m := range p.Members {
				holder(m)
			}
		}
		return c
	}
	if placement != nil {
		return nil // a resource in a project needs a scoped check
	}
	allows := func(stmts []Statement) bool {
		for i := range stmts {
			if stmts[i].Effect == Allow && stmts[i].matches(action, resource) {
				return true
			}
		}
		return false
	}
	// A policy's holders are added as they are, groups too (a group id
	// is no identity's, or names one that is then checked like any
	// other): telling groups apart per holder was a map lookup for each of
	// a widely held policy's ~16k holders. The groups holding an allowing
	// policy are found from the groups' side, which is the shorter.
	var allowing set
	for _, pol := range r.Policies {
		if pol.AttachedTo.Len() > 0 && allows(pol.Statements) {
			for t := range pol.AttachedTo.All() {
				add(t)
			}
			allowing.add(pol.ID)
		}
	}
	if allowing.Len() > 0 {
		for _, g := range r.Groups {
			for p := range g.Policies.All() {
				if allowing.Has(p) {
					for m := range g.Members.All() {
						add(m)
					}
					break
				}
			}
		}
	}
	for _, pl := range r.Plans {
		for _, id := range pl.Policies {
			if pol := r.Policies[id]; pol != nil && allows(pol.Statements) {
				for t := range pl.AttachedTo.All() {
					holder(t)
				}
				break
			}
		}
	}
	var roles []string
	for role, stmts := range r.roleCache {
		if allows(stmts) {
			roles = append(roles, role)
		}
	}
	if len(roles) > 0 {
		// Roles have no index of holders: they are few and held by few,
		// and a scan of the identities' role sets is cheap next to checks.
		for id, ident := range r.Identities.All() {
			for _, role := range roles {
				if ident.Roles.Has(role) {
					add(id)
					break
				}
			}
		}
	}
	if m, ok := r.managedEntity(resource); ok {
		if ms, ok := r.managers(m); ok {
			for id := range ms.All() {
				holder(id)
			}
		}
		if m.Kind == ManagedApp {
			if a := r.Identities.Get(m.ID); a != nil {
				for id := range a.AppState().Sharees.All() {
					holder(id)
				}
			}
		}
	}
	return c
}

// ascending yields ids in order, once each. A heap rather than a sort:
// a page stops after its first few hundred candidates, and sorting all of a
// widely held resource's ~16k holders cost more than the page's checks.
func ascending(ids []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		h := idHeap(ids)
		heap.Init(&h)
		prev := "" // no candidate is "": each is greater than a page's after
		for h.Len() > 0 {
			id := heap.Pop(&h).(string)
			if id == prev {
				continue
			}
			prev = id
			if !yield(id) {
				return
			}
		}
	}
}

// idHeap is a min-heap of ids (container/heap).
type idHeap []string

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
