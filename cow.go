package iam

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// States that share their entities (copy on write). A time-travel read
// needs the state at a past position: built from the nearest checkpoint
// and a replay of the log's tail. Loading a checkpoint's whole read model
// costs O(state) per read (~1 s at 1M entries); a Snapshot kept at each
// checkpoint instead shares every entity with the live state and with the
// other snapshots, so that a read forks one (its small maps of ids are
// copied, the large ones, IDMap, shared bucket by bucket; no entity is
// copied) and replays the tail, copying only the entities and buckets
// the tail changes.
//
// Ownership is by generation: each State and each of its realms has one,
// and so does each entity (the generation of the realm that made or last
// copied it). An apply changes an entity only through the own* accessors
// below, which copy it first when its generation is not the realm's: a
// shared entity is never changed in place. A State never shared has
// generation 0 throughout, and copies nothing.

// generations hands out the generations of shared states; 0 is never
// handed out.
var generations atomic.Uint64

// Snapshot returns a copy of s as it is now that shares every entity with
// s, and gives s a new generation, so that s copies an entity before its
// next change to it and the copy never sees that change. The copy may be
// read by any number of goroutines, and forked (Fork). Nothing may change
// s while Snapshot runs; it reads s as readers do (it copies the small
// maps of ids and shares the large ones, IDMap), and holds exclusive, the
// lock s's readers share, only to change s's generation.
func (s *State) Snapshot(exclusive sync.Locker) *State {
	c := s.share()
	gen := generations.Add(1)
	exclusive.Lock()
	defer exclusive.Unlock()
	s.gen = gen
	s.sharedRevokedKeys = true
	for _, r := range s.realms {
		r.gen = gen
	}
	return c
}

// Fork returns a copy of s, a Snapshot that is never changed, which the
// caller may change: it copies an entity before its first change to it.
// Any number of forks of one snapshot may be made at once.
func (s *State) Fork() *State { return s.share() }

// share copies s's small maps of ids, not the entities they hold, and
// shares its IDMaps, under a new generation. What a realm holds by value in its maps (sets, inner maps,
// slices changed in place) is copied whole: those are few.
func (s *State) share() *State {
	c := *s
	c.gen = generations.Add(1)
	c.realms = make(map[string]*Realm, len(s.realms))
	for id, r := range s.realms {
		c.realms[id] = r.share(c.gen)
	}
	c.sharedRevokedKeys = true
	return &c
}

// ownRevokedKeys makes s's revokedKeys its own to change.
func (s *State) ownRevokedKeys() {
	if s.sharedRevokedKeys {
		s.revokedKeys = maps.Clone(s.revokedKeys)
		s.sharedRevokedKeys = false
	}
}

func (r *Realm) share(gen uint64) *Realm {
	c := *r
	c.gen = gen
	c.Groups = maps.Clone(r.Groups)
	c.Policies = maps.Clone(r.Policies)
	c.Projects = maps.Clone(r.Projects)
	c.Resources = maps.Clone(r.Resources)
	c.Plans = maps.Clone(r.Plans)
	c.idem = maps.Clone(r.idem)
	c.idemOrder = slices.Clone(r.idemOrder)
	c.roleCache = maps.Clone(r.roleCache) // its statements are never changed
	c.manages = maps.Clone(r.manages)     // its sets are replaced, never changed (ManagerAdded)
	c.sharedWith = cloneMap(r.sharedWith, set.clone)
	c.Invitations = maps.Clone(r.Invitations)
	c.authCodes = maps.Clone(r.authCodes)
	c.refreshTokens = maps.Clone(r.refreshTokens)
	c.resetTokens = maps.Clone(r.resetTokens)
	c.invitationTokens = maps.Clone(r.invitationTokens)
	return &c
}

// shared is an entity of a realm, copied before a change when a snapshot
// may share it.
type shared[T any] interface {
	*T
	generation() *uint64
	cow() *T
}

// own returns m[k] for the realm of generation gen to change: a copy when
// another state may share it, put in its place. nil when there is none.
func own[T any, P shared[T]](m map[string]P, k string, gen uint64) P {
	x, copied := owned(m[k], gen)
	if copied {
		m[k] = x
	}
	return x
}

// ownIn is own for an IDMap.
func ownIn[T any, P shared[T]](m *IDMap[P], k string, gen uint64) P {
	x, copied := owned(m.Get(k), gen)
	if copied {
		m.put(gen, k, x)
	}
	return x
}

// owned returns x, or a copy of it of generation gen (copied) when it is
// another's.
func owned[T any, P shared[T]](x P, gen uint64) (_ P, copied bool) {
	if x == nil || *x.generation() == gen {
		return x, false
	}
	var c P = x.cow()
	*c.generation() = gen
	return c, true
}

func (x *Identity) generation() *uint64          { return &x.gen }
func (x *Group) generation() *uint64             { return &x.gen }
func (x *Policy) generation() *uint64            { return &x.gen }
func (x *Project) generation() *uint64           { return &x.gen }
func (x *ResourcePlacement) generation() *uint64 { return &x.gen }
func (x *Plan) generation() *uint64              { return &x.gen }
func (x *Invitation) generation() *uint64        { return &x.gen }

// The accessors apply changes entities through (see own).
func (r *Realm) ownIdentity(id string) *Identity { return ownIn(&r.Identities, id, r.gen) }
func (r *Realm) ownGroup(id string) *Group       { return own(r.Groups, id, r.gen) }
func (r *Realm) ownPolicy(id string) *Policy     { return own(r.Policies, id, r.gen) }
func (r *Realm) ownProject(id string) *Project   { return own(r.Projects, id, r.gen) }
func (r *Realm) ownPlan(id string) *Plan         { return own(r.Plans, id, r.gen) }
func (r *Realm) ownInvitation(id string) *Invitation {
	return own(r.Invitations, id, r.gen)
}
func (r *Realm) ownResource(hrn string) *ResourcePlacement {
	return own(r.Resources, hrn, r.gen)
}

// cow copies an entity for own: whole, but for the sets that grow with the
// realm (a group's members, the identities a policy or plan is attached
// to), which the copy shares until its first change to them (set.own):
// copying a policy attached to 10,000 users on each change was most of a
// time-travel read's cost.
func (x *Identity) cow() *Identity                   { return x.clone() }
func (x *Project) cow() *Project                     { return x.clone() }
func (x *ResourcePlacement) cow() *ResourcePlacement { return x.clone() }
func (x *Invitation) cow() *Invitation               { return x.clone() }

func (x *Group) cow() *Group {
	c := *x
	c.Policies, c.Plans, c.Projects, c.Managers = x.Policies.clone(), x.Plans.clone(), x.Projects.clone(), x.Managers.clone()
	return &c
}

// A policy's statements and a plan's policies are never changed in place.
func (x *Policy) cow() *Policy { c := *x; return &c }
func (x *Plan) cow() *Plan     { c := *x; return &c }

// ownedSet is a set of an entity of generation gen, for apply to change.
type ownedSet struct {
	s   *set
	gen uint64
}

// own returns s for an entity of generation gen to change: its ids are
// copied first when an entity of another generation may share them.
func (s *set) own(gen uint64) ownedSet {
	if s.p != nil && s.p.gen != gen {
		s.p = &setData{small: slices.Clone(s.p.small), big: shareBitmap(s.p.big), gen: gen}
	}
	return ownedSet{s, gen}
}

func (o ownedSet) add(k string) { o.addNum(names.intern(k)) }

func (o ownedSet) addNum(id uint32) {
	o.s.addNum(id)
	o.s.p.gen = o.gen // when the set was empty, its data is new
}

func (o ownedSet) remove(k string) { o.s.remove(k) }

// IDs is how many ids the maps of every realm and of the state hold. A
// replica estimates a snapshot's memory from it.
func (s *State) IDs() int {
	n := s.clients.Len() + s.apiKeys.Len() + len(s.revokedKeys)
	for _, r := range s.realms {
		n += r.Identities.Len() + len(r.Groups) + len(r.Policies) + len(r.Projects) + len(r.Resources) + len(r.Plans) +
			r.emails.Len() + len(r.idem) + len(r.Invitations) + len(r.authCodes) + len(r.refreshTokens) + len(r.resetTokens) + len(r.invitationTokens)
	}
	return n
}
