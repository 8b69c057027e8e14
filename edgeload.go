package iam

import (
	"fmt"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
)

// EdgeLoader rebuilds memberships and attachments in bulk, for a read model
// loading its rows in key order. Applying one event per edge made a restart
// at 10M grants take 29 s: every edge inserted into its policy's or group's
// set of thousands of ids, a cache miss and a map growth at a time. Here an
// edge appends the holder's number to a list kept per policy and group, and
// Flush builds each set once. Edges of one group, or one attachment target,
// arrive together in key order, so the last one is remembered too, and a
// target's own policies are built once when the next target comes.
//
// Ids are passed as bytes, as a store's iterator gives them: a load at 10M
// grants would otherwise make a string per edge only to look it up. The
// loader keeps none of them.
//
// Attachments come in the order of their targets' ids, as the identities'
// own rows came before them: told of each identity loaded (IdentityLoaded),
// the loader finds an attachment's identity by walking that list, not by
// hashing its id, which at 1M identities cost a restart 0.8 s in cache
// misses.
//
// Until Flush, the policies' AttachedTo, the groups' Members and the last
// target's Policies lack the edges added since the last Flush: flush before
// applying anything else.
type EdgeLoader struct {
	st     *State
	realm  *Realm
	group  *Group    // the last membership's group
	target string    // the last attachment target's id, with its entity
	tgroup *Group    // the last target, when a group
	ident  *Identity // the last target, when an identity
	tpols  []uint32  // the last target's policies not yet in its set
	// The policies and groups with edges added since Flush; the numbers
	// of those edges' ends wait in their loading fields (a map of them cost
	// two lookups an edge, 0.6 s of a 10M-grant restart).
	policies []*Policy
	groups   []*Group
	loaded   map[*Realm]*identityWalk
	walk     *identityWalk // the realm's, nil when it has none
}

// identityWalk lists a realm's identities in the order they were loaded,
// and how far the attachments' targets have gone through them.
type identityWalk struct {
	ids  []*Identity
	next int
}

// NewEdgeLoader returns a loader that adds edges to st.
func NewEdgeLoader(st *State) *EdgeLoader {
	return &EdgeLoader{st: st, loaded: map[*Realm]*identityWalk{}}
}

// IdentityLoaded tells the loader that id stands loaded in realm (a later
// event replacing it would make the walk stale: a load applies none).
// Identities must be told in the order of their ids.
func (l *EdgeLoader) IdentityLoaded(realm string, id *Identity) {
	r := l.st.realms[realm]
	if r == nil || id == nil {
		return
	}
	w := l.loaded[r]
	if w == nil {
		w = &identityWalk{}
		l.loaded[r] = w
	}
	w.ids = append(w.ids, id)
}

// targetIdentity returns the identity with id target, walking on from the
// last one found; by its id when the walk does not have it.
func (l *EdgeLoader) targetIdentity(target []byte) *Identity {
	if w := l.walk; w != nil {
		for w.next < len(w.ids) && w.ids[w.next].ID < string(target) {
			w.next++
		}
		if w.next < len(w.ids) && w.ids[w.next].ID == string(target) {
			w.next++
			return w.ids[w.next-1]
		}
	}
	return l.realm.Identities.Get(string(target))
}

func (l *EdgeLoader) useRealm(realm []byte) error {
	if l.realm != nil && l.realm.ID == string(realm) {
		return nil
	}
	r := l.st.realms[string(realm)]
	if r == nil {
		return fmt.Errorf("unknown realm")
	}
	l.endTarget()
	l.realm, l.group, l.walk = r, nil, l.loaded[r]
	return nil
}

// AddMember makes identity a member of group, as MemberAdded does; both
// must exist.
func (l *EdgeLoader) AddMember(realm, group, identity []byte) error {
	if err := l.useRealm(realm); err != nil {
		return err
	}
	if l.group == nil || l.group.ID != string(group) {
		l.group = l.realm.Groups[string(group)]
	}
	id := l.realm.Identities.Get(string(identity))
	if l.group == nil || id == nil {
		return fmt.Errorf("membership of missing entities")
	}
	if l.group.loading == nil {
		l.groups = append(l.groups, l.group)
	}
	l.group.loading = append(l.group.loading, id.num)
	id.Groups.addNum(l.group.num)
	return nil
}

// Attach attaches policy to target (a group or an identity), as
// PolicyAttached does; both must exist.
func (l *EdgeLoader) Attach(realm, target, policy []byte) error {
	if err := l.useRealm(realm); err != nil {
		return err
	}
	pol := l.realm.Policies[string(policy)]
	if pol == nil {
		return fmt.Errorf("attachment of missing entities")
	}
	if l.target != string(target) || (l.tgroup == nil && l.ident == nil) {
		l.endTarget()
		if l.tgroup = l.realm.Groups[string(target)]; l.tgroup != nil {
			l.target = l.tgroup.ID
		} else if l.ident = l.targetIdentity(target); l.ident != nil {
			l.target = l.ident.ID
		} else {
			return fmt.Errorf("attachment of missing entities")
		}
	}
	if pol.loading == nil {
		l.policies = append(l.policies, pol)
	}
	if l.tgroup != nil {
		pol.loading = append(pol.loading, l.tgroup.num)
	} else {
		pol.loading = append(pol.loading, l.ident.num)
	}
	l.tpols = append(l.tpols, pol.num)
	return nil
}

// endTarget adds the last target's pending policies to its set: built once,
// rather than grown an insert at a time.
func (l *EdgeLoader) endTarget() {
	switch {
	case l.tgroup != nil:
		l.tgroup.Policies.addNums(l.tpols)
	case l.ident != nil:
		l.ident.Policies.addNums(l.tpols)
	}
	l.target, l.tgroup, l.ident, l.tpols = "", nil, nil, l.tpols[:0]
}

// Flush adds the pending edges to the policies' and groups' sets.
func (l *EdgeLoader) Flush() {
	l.endTarget()
	for _, pol := range l.policies {
		pol.AttachedTo.addNums(pol.loading)
		pol.loading = nil
	}
	for _, g := range l.groups {
		g.Members.addNums(g.loading)
		g.loading = nil
	}
	clear(l.policies)
	clear(l.groups)
	l.policies, l.groups = l.policies[:0], l.groups[:0]
	// The entities stay valid, but a flush means other events come next,
	// which may delete them.
	l.realm, l.group, l.walk = nil, nil, nil
}

// addNums puts interned ids in the set. Into an empty set it builds the
// set once, sized for them, rather than growing it an id at a time.
func (s *set) addNums(ids []uint32) {
	if s.p != nil {
		for _, id := range ids {
			s.addNum(id)
		}
		return
	}
	if len(ids) == 0 {
		return
	}
	if len(ids) <= smallSet {
		small := slices.Clone(ids)
		slices.Sort(small)
		s.p = &setData{small: slices.Compact(small)}
		return
	}
	big := roaring.BitmapOf(ids...)
	if big.GetCardinality() <= smallSet {
		// Duplicates brought it down to a slice's size.
		s.p = &setData{small: big.ToArray()}
		return
	}
	s.p = &setData{big: big}
}
