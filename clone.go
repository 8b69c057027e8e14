package iam

import (
	"maps"
	"slices"
)

// Clone returns a deep copy of the state: applying events to either never
// changes the other. A dry-run (the API's /v1/simulate) decides proposed
// commands on a clone of the latest state; replaying the log instead costs
// time in proportion to the log's length (docs/dry-run.md has figures),
// a clone in proportion to the state's size.
//
// Every field is copied: values by assignment, maps and slices afresh, down
// to the leaves. A field added to a type of the state must be added here
// too; TestState_Clone fails on any map, slice or pointer the clone shares
// with its original.
func (s *State) Clone() *State {
	c := *s
	c.gen = 0 // shares nothing (cow.go)
	c.realms = make(map[string]*Realm, len(s.realms))
	for id, r := range s.realms {
		c.realms[id] = r.clone()
	}
	c.clients = s.clients.clone(nil)
	c.apiKeys = s.apiKeys.clone(nil)
	c.revokedKeys = maps.Clone(s.revokedKeys)
	c.sharedRevokedKeys = false
	return &c
}

func (r *Realm) clone() *Realm {
	c := *r
	c.gen = 0
	c.Identities = r.Identities.clone((*Identity).clone)
	c.Groups = cloneMap(r.Groups, (*Group).clone)
	c.Policies = cloneMap(r.Policies, (*Policy).clone)
	c.Projects = cloneMap(r.Projects, (*Project).clone)
	c.Resources = cloneMap(r.Resources, (*ResourcePlacement).clone)
	c.Plans = cloneMap(r.Plans, (*Plan).clone)
	c.emails = r.emails.clone(func(id string) string { return id })
	c.idem = maps.Clone(r.idem)
	c.idemOrder = slices.Clone(r.idemOrder)
	c.roleCache = cloneMap(r.roleCache, cloneStatements)
	c.manages = cloneMap(r.manages, maps.Clone)
	c.sharedWith = cloneMap(r.sharedWith, set.clone)
	c.Invitations = cloneMap(r.Invitations, (*Invitation).clone)
	c.authCodes = maps.Clone(r.authCodes)
	c.refreshTokens = maps.Clone(r.refreshTokens)
	c.resetTokens = maps.Clone(r.resetTokens)
	c.invitationTokens = maps.Clone(r.invitationTokens)
	return &c
}

func (id *Identity) clone() *Identity {
	c := *id
	c.gen = 0
	c.Groups = id.Groups.clone()
	c.Roles = id.Roles.clone()
	c.Policies = id.Policies.clone()
	c.Plans = id.Plans.clone()
	c.Projects = id.Projects.clone()
	c.Sealed = slices.Clone(id.Sealed)
	if id.signIn != nil {
		st := *id.signIn
		st.AuthCodes = maps.Clone(st.AuthCodes)
		st.RefreshFamilies = cloneMap(st.RefreshFamilies, func(f RefreshFamily) RefreshFamily {
			f.Used = slices.Clone(f.Used)
			return f
		})
		c.signIn = &st
	}
	if id.app != nil {
		a := *id.app
		a.RedirectURIs = slices.Clone(a.RedirectURIs)
		a.Managers = a.Managers.clone()
		a.Sharees = a.Sharees.clone()
		a.Credentials = maps.Clone(a.Credentials)
		a.APIKeys = maps.Clone(a.APIKeys)
		a.DisabledAPIKeys = a.DisabledAPIKeys.clone()
		c.app = &a
	}
	return &c
}

func (g *Group) clone() *Group {
	c := *g
	c.gen = 0
	c.Members = g.Members.clone()
	c.Policies = g.Policies.clone()
	c.Plans = g.Plans.clone()
	c.Projects = g.Projects.clone()
	c.Managers = g.Managers.clone()
	return &c
}

func (p *Policy) clone() *Policy {
	c := *p
	c.gen = 0
	c.Statements = cloneStatements(p.Statements)
	c.AttachedTo = p.AttachedTo.clone()
	c.InProjects = p.InProjects.clone()
	return &c
}

func (p *Project) clone() *Project {
	c := *p
	c.gen = 0
	c.Members = cloneMap(p.Members, slices.Clone)
	c.Resources = maps.Clone(p.Resources)
	c.Managers = p.Managers.clone()
	c.Policies = cloneMap(p.Policies, (*Policy).clone)
	c.DefaultMemberPolicies = slices.Clone(p.DefaultMemberPolicies)
	return &c
}

func (p *ResourcePlacement) clone() *ResourcePlacement {
	c := *p
	c.gen = 0
	c.Links = p.Links.clone()
	return &c
}

func (p *Plan) clone() *Plan {
	c := *p
	c.gen = 0
	c.Policies = slices.Clone(p.Policies)
	c.AttachedTo = p.AttachedTo.clone()
	return &c
}

func (in *Invitation) clone() *Invitation {
	c := *in
	c.gen = 0
	c.Sealed = slices.Clone(in.Sealed)
	c.Roles = slices.Clone(in.Roles)
	c.Groups = slices.Clone(in.Groups)
	return &c
}

func cloneStatements(st []Statement) []Statement {
	if st == nil {
		return nil
	}
	n := 0
	for _, s := range st {
		n += len(s.Actions) + len(s.Resources)
	}
	// Two allocations of exactly the size needed, not 1+2n: decoders
	// grow slices past what they hold (segmentio's to 10 strings), and
	// the policies of a 820k-row index kept 74 MB of it.
	out, strs := make([]Statement, len(st)), make([]string, 0, n)
	part := func(ss []string) []string {
		switch {
		case ss == nil:
			return nil
		case len(ss) == 0:
			return []string{}
		}
		from := len(strs)
		strs = append(strs, ss...)
		return strs[from:len(strs):len(strs)] // capped: an append copies
	}
	for i, s := range st {
		out[i] = Statement{Effect: s.Effect, Actions: part(s.Actions), Resources: part(s.Resources)}
	}
	return out
}

// cloneMap copies m with each value copied by clone; nil stays nil, as a
// nil map means "none yet" to some fields (Plans, Project.Policies).
func cloneMap[K comparable, V any](m map[K]V, clone func(V) V) map[K]V {
	if m == nil {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = clone(v)
	}
	return out
}
