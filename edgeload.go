package iam

import (
	"fmt"
	"maps"
	"slices"
)

// EdgeLoader rebuilds memberships and attachments in bulk, for a read model
// loading its rows in key order. Applying one event per edge made a restart
// at 10M grants take 29 s: every edge inserted into its policy's or group's
// set of thousands of ids, a cache miss and a map growth at a time. Here an
// edge appends the holder's number to a list kept per policy and group, and
// Flush builds each set once. Edges of one group, or one attachment target,
// arrive together in key order, so the last one is remembered too.
//
// Until Flush, the policies' AttachedTo and the groups' Members lack the
// edges added since the last Flush: flush before applying anything else.
type EdgeLoader struct {
	st      *State
	realmID string
	realm   *Realm
	target  string // the last attachment target, with its entity
	group   *Group
	ident   *Identity
	holders map[*Policy][]uint32 // policy → numbers of targets attached since Flush
	members map[*Group][]uint32  // group → numbers of members added since Flush
}

// NewEdgeLoader returns a loader that adds edges to st.
func NewEdgeLoader(st *State) *EdgeLoader {
	return &EdgeLoader{st: st, holders: map[*Policy][]uint32{}, members: map[*Group][]uint32{}}
}

func (l *EdgeLoader) useRealm(realm string) error {
	if l.realm != nil && l.realmID == realm {
		return nil
	}
	r := l.st.realms[realm]
	if r == nil {
		return fmt.Errorf("unknown realm")
	}
	l.realmID, l.realm, l.target, l.group, l.ident = realm, r, "", nil, nil
	return nil
}

// AddMember makes identity a member of group, as MemberAdded does; both
// must exist.
func (l *EdgeLoader) AddMember(realm, group, identity string) error {
	if err := l.useRealm(realm); err != nil {
		return err
	}
	g, id := l.realm.Groups[group], l.realm.Identities[identity]
	if g == nil || id == nil {
		return fmt.Errorf("membership of missing entities")
	}
	l.members[g] = append(l.members[g], id.num)
	id.Groups.addNum(g.num)
	return nil
}

// Attach attaches policy to target (a group or an identity), as
// PolicyAttached does; both must exist.
func (l *EdgeLoader) Attach(realm, target, policy string) error {
	if err := l.useRealm(realm); err != nil {
		return err
	}
	pol := l.realm.Policies[policy]
	if pol == nil {
		return fmt.Errorf("attachment of missing entities")
	}
	if target != l.target || (l.group == nil && l.ident == nil) {
		l.target, l.group, l.ident = target, l.realm.Groups[target], nil
		if l.group == nil {
			l.ident = l.realm.Identities[target]
		}
	}
	switch {
	case l.group != nil:
		l.holders[pol] = append(l.holders[pol], l.group.num)
		l.group.Policies.addNum(pol.num)
	case l.ident != nil:
		l.holders[pol] = append(l.holders[pol], l.ident.num)
		l.ident.Policies.addNum(pol.num)
	default:
		return fmt.Errorf("attachment of missing entities")
	}
	return nil
}

// Flush adds the pending edges to the policies' and groups' sets.
func (l *EdgeLoader) Flush() {
	for pol, nums := range l.holders {
		pol.AttachedTo.addNums(nums)
	}
	for g, nums := range l.members {
		g.Members.addNums(nums)
	}
	clear(l.holders)
	clear(l.members)
	// The entities stay valid, but a flush means other events come next,
	// which may delete them.
	l.realmID, l.realm, l.target, l.group, l.ident = "", nil, "", nil, nil
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
	big := make(map[uint32]struct{}, len(ids))
	for _, id := range ids {
		big[id] = struct{}{}
	}
	if len(big) <= smallSet {
		// Duplicates brought it down to a slice's size.
		s.p = &setData{small: slices.Sorted(maps.Keys(big))}
		return
	}
	s.p = &setData{big: big}
}
