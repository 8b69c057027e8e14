package replica

// A bulk catch-up: a replica that starts empty and far behind its log
// applies the log to its index alone, and writes every row once, in key
// order, into sstables it ingests with its position when it has caught up.
// A replay that commits as it goes inserts each row into Pebble's skip list
// at a random place, which cost as much as the whole raw write of the same
// rows; docs/benchmarks.md has the figures.
//
// Until the rows are written, the read model on disk stays empty: checks,
// reads and tokens are answered from the index as ever, and a crash starts
// the catch-up over from the first entry. The rows are written (finish)
// when a batch finds the replica caught up, when the log goes quiet (a
// probe), when DigestAt needs Pebble at a position, at Flush and at Close.
// The history's checkpoints before that position are then filled in from
// the log in the background, as for a region joined from a snapshot.

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"

	iam "github.com/iam-project/iam"
)

// DefaultBulkCatchUp is how many entries an empty replica's first batch
// must end behind the log's head for it to catch up as a bulk load: below
// that a replay takes seconds at most either way.
const DefaultBulkCatchUp = 100_000

// bulkCatchUp is a bulk catch-up under way (Replica.bulk).
type bulkCatchUp struct {
	cancel context.CancelFunc // stops its probe
}

// applyBulk applies entries as part of a bulk catch-up, starting one when
// the replica is empty, nothing waits on Pebble (DigestAt) and the entries
// are old (behindLog) and end far enough behind the log's head; it reports
// whether it did. A
// batch that finds the replica caught up, or a DigestAt waiting, ends the
// catch-up first, and is then left to the usual apply.
func (r *Replica) applyBulk(entries []iam.LogEntry) (bool, error) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	last := entries[len(entries)-1]
	if r.bulk == nil {
		if !r.canBulk {
			return false, nil
		}
		// Decided at the first batch: after it the read model holds rows.
		r.canBulk = false
		if r.Applied() != 0 || len(r.stops) > 0 || !behindLog(last.Time, r.cfg.Now()) {
			return false, nil
		}
		head := r.logHead(context.Background())
		if head < last.Seq || head-last.Seq < uint64(r.cfg.BulkCatchUp) {
			return false, nil // not far behind, or the head cannot be had
		}
		r.startBulkLocked(head)
	} else if !behindLog(last.Time, r.cfg.Now()) || len(r.stops) > 0 {
		return false, r.finishBulkLocked(true)
	}
	return true, r.applyToIndex(entries)
}

// startBulkLocked starts a bulk catch-up, and the probe that ends it once
// the replica has applied head and the log is quiet (awaitCurrent): a log
// whose last entry is old never gives a batch that finds the replica
// caught up. r.applyMu is held.
func (r *Replica) startBulkLocked(head uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bulkCatchUp{cancel: cancel}
	r.bulk = b
	r.bulkProbes.Go(func() {
		if !r.awaitCurrent(ctx, head, 0) {
			return // ended otherwise
		}
		r.applyMu.Lock()
		defer r.applyMu.Unlock()
		if r.bulk == b {
			// Its error is the replica's (applyErr).
			_ = r.finishBulkLocked(true)
		}
	})
}

// applyToIndex applies entries to the index alone and moves the position
// to the last: nothing is committed, no checkpoint taken. r.applyMu is held.
func (r *Replica) applyToIndex(entries []iam.LogEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applyErr != nil {
		return r.applyErr
	}
	next := r.pos.Seq
	for _, e := range entries {
		if e.Seq != next+1 {
			return fmt.Errorf("replica %s: entry %d does not follow applied %d", r.cfg.Region, e.Seq, next)
		}
		next = e.Seq
	}
	for _, e := range entries {
		if err := r.state.ApplyEntry(e, nil); err != nil {
			// The index is past the position: refuse further work, as
			// apply does.
			r.applyErr = fmt.Errorf("replica %s: entry %d: %w", r.cfg.Region, e.Seq, err)
			return r.applyErr
		}
	}
	last := entries[len(entries)-1]
	r.pos, r.lastTime, r.appliedAt = Position{Seq: last.Seq, MsgID: last.MsgID}, last.Time, r.cfg.Now()
	close(r.advanced)
	r.advanced = make(chan struct{})
	r.entries.Add(uint64(len(entries)))
	return nil
}

// finishBulkLocked ends a bulk catch-up, if one is under way: it writes
// the index's rows and the position to Pebble and, with history, makes
// that position a checkpoint and fills the history before it from the log
// (historyFrom), as for a joined region. An error is the replica's from
// then on (applyErr). r.applyMu is held, so the index does not change
// meanwhile; checks go on reading it.
func (r *Replica) finishBulkLocked(history bool) error {
	b := r.bulk
	if b == nil {
		return nil
	}
	r.bulk = nil
	b.cancel()
	r.mu.RLock()
	st, pos, applyErr := r.state, r.pos, r.applyErr
	r.mu.RUnlock()
	if applyErr != nil {
		// An entry failed part way: the index holds some of its batch, so
		// its rows are not the position's. The read model stays empty.
		return applyErr
	}
	if err := r.store.bulkLoad(r.cfg.Dir, r.cfg.FS, st, pos); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.applyErr = fmt.Errorf("replica %s: write the rows of a bulk catch-up at %d: %w", r.cfg.Region, pos.Seq, err)
		return r.applyErr
	}
	if history {
		r.historyFrom(pos.Seq)
	}
	return nil
}

// Flush ends a bulk catch-up now, writing to Pebble the rows it holds only
// in its index; otherwise it does nothing, since every other apply commits
// as it goes. After it the read model on disk is at Applied().
func (r *Replica) Flush() error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	return r.finishBulkLocked(true)
}

// bulkLoad writes st's rows (keyOrderedRows) and pos into the empty store
// as sstables it ingests in one step. The sstable writer refuses a row out
// of key order, so a mistake there is an error, not a read model that
// misses rows.
func (s *Store) bulkLoad(dir string, fs vfs.FS, st *iam.State, pos Position) error {
	return s.ingestRows(dir, fs, pos, func(emit func(k, v []byte) error) error { return keyOrderedRows(st, emit) })
}

// rowChunkSize is how many bytes of rows the generator hands the writer at
// a time.
const rowChunkSize = 1 << 20

// rowChunk is rows, each key then value, in one buffer.
type rowChunk struct {
	buf  []byte
	ends []int // each row's key end, then its value end
}

// chunkRows is the rowSource ingest reads chunks from while they are made.
type chunkRows struct {
	todo, free chan *rowChunk
	cur        *rowChunk
	i, start   int
	err        error // the generator's, set before todo closes
}

func (c *chunkRows) next() (k, v []byte, ok bool, err error) {
	for c.cur == nil || c.i == len(c.cur.ends) {
		if c.cur != nil {
			select {
			case c.free <- c.cur:
			default:
			}
		}
		if c.cur = <-c.todo; c.cur == nil {
			return nil, nil, false, nil
		}
		c.i, c.start = 0, 0
	}
	k, v = c.cur.buf[c.start:c.cur.ends[c.i]], c.cur.buf[c.cur.ends[c.i]:c.cur.ends[c.i+1]]
	c.start, c.i = c.cur.ends[c.i+1], c.i+2
	return k, v, true, nil
}

// end refuses the rows of a generator that failed part way: they are not
// all the rows, and must not be ingested with the position.
func (c *chunkRows) end() error { return c.err }

// ingestRows ingests the rows gen emits, in key order, and pos: gen runs
// here, and the sstables are written beside it on a goroutine of their own
// (the two took about as long).
func (s *Store) ingestRows(dir string, fs vfs.FS, pos Position, gen func(emit func(k, v []byte) error) error) error {
	rows := &chunkRows{todo: make(chan *rowChunk, 4), free: make(chan *rowChunk, 4)}
	var wg sync.WaitGroup
	var ingestErr error
	wg.Go(func() {
		ingestErr = s.ingest(context.Background(), dir, fs, defaultTableSize, rows, pos)
		for range rows.todo {
			// After a failure: take what gen still makes, so it ends.
		}
	})
	fresh := func() *rowChunk {
		// Sized for a chunk and its last row, so that it never grows.
		return &rowChunk{buf: make([]byte, 0, 2*rowChunkSize), ends: make([]int, 0, rowChunkSize/16)}
	}
	cur := fresh()
	err := gen(func(k, v []byte) error {
		cur.buf = append(cur.buf, k...)
		cur.ends = append(cur.ends, len(cur.buf))
		cur.buf = append(cur.buf, v...)
		cur.ends = append(cur.ends, len(cur.buf))
		if len(cur.buf) >= rowChunkSize {
			rows.todo <- cur
			select {
			case cur = <-rows.free:
				cur.buf, cur.ends = cur.buf[:0], cur.ends[:0]
			default:
				cur = fresh()
			}
		}
		return nil
	})
	if rows.err = err; err == nil {
		rows.todo <- cur
	}
	close(rows.todo)
	wg.Wait()
	if err == nil {
		err = ingestErr
	}
	return err
}

// orderedKinds are the kinds of row keyOrderedRows walks in key order
// without a sort: realms, identities, groups and policies, and the edges
// most of a read model is (attachments, memberships, roles). The rest it
// collects and sorts, as Rows does every one.
var orderedKinds = map[iam.ChangeKind]bool{
	iam.ChangeRealm: true, iam.ChangeIdentity: true, iam.ChangeGroup: true, iam.ChangePolicy: true,
	iam.ChangeAttachment: true, iam.ChangeMember: true, iam.ChangeRole: true,
}

// keyOrderedRows calls emit with the rows of st in key order, as Rows
// does, without collecting and sorting every key (which took a replay of
// 1.1M rows 1.7 s, against 0.3 s this way): it sorts each realm's ids of
// identities, groups and policies once and walks them, and each one's
// edges, in key order, merging in the rows of the other kinds, collected
// and sorted. A key's fields are joined by sep (0), so ids sorted give
// keys sorted: ids hold no 0 byte, which the row layout could not parse
// back either (parseKey). emit must copy a value it keeps: identities'
// rows are encoded into one buffer.
func keyOrderedRows(st *iam.State, emit func(k, v []byte) error) error {
	identities := newIdentityEncoder() // emit copies what it keeps
	var others []string
	eachRowKey(st, true, func(k string) { others = append(others, k) })
	slices.Sort(others)
	row := func(k, v []byte) error {
		for len(others) > 0 && others[0] < string(k) {
			ov, ok := Row(st, others[0])
			if !ok {
				return fmt.Errorf("rows: %q listed but absent", others[0])
			}
			if err := emit([]byte(others[0]), ov); err != nil {
				return err
			}
			others = others[1:]
		}
		return emit(k, v)
	}
	type identity struct {
		id string
		*iam.Identity
	}
	type realmIDs struct {
		r                *iam.Realm
		identities       []identity
		groups, policies []string
	}
	rids := st.RealmIDs()
	slices.Sort(rids)
	realms := make([]realmIDs, len(rids))
	var key []byte
	for i, rid := range rids {
		r := st.Realm(rid)
		x := realmIDs{r: r, identities: make([]identity, 0, r.Identities.Len())}
		for id, ident := range r.Identities.All() {
			x.identities = append(x.identities, identity{id, ident})
		}
		slices.SortFunc(x.identities, func(a, b identity) int { return strings.Compare(a.id, b.id) })
		x.groups = slices.Sorted(maps.Keys(r.Groups))
		x.policies = slices.Sorted(maps.Keys(r.Policies))
		realms[i] = x
		v, _ := rowValue(st, iam.Change{Kind: iam.ChangeRealm, Realm: rid})
		if err := row(append(append(key[:0], rowRealm...), rid...), v); err != nil {
			return err
		}
	}
	for _, x := range realms {
		key = append(append(append(key[:0], rowIdentity...), x.r.ID...), sep...)
		n := len(key)
		for _, ident := range x.identities {
			key = append(key[:n], ident.id...)
			if err := row(key, identities.value(ident.Identity)); err != nil {
				return err
			}
		}
	}
	entities := func(kind iam.ChangeKind, prefix string, ids func(realmIDs) []string) error {
		for _, x := range realms {
			key = append(append(append(key[:0], prefix...), x.r.ID...), sep...)
			n := len(key)
			for _, id := range ids(x) {
				v, ok := rowValue(st, iam.Change{Kind: kind, Realm: x.r.ID, From: id})
				if !ok {
					return fmt.Errorf("rows: %s %q listed but absent", prefix, id)
				}
				key = append(key[:n], id...)
				if err := row(key, v); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := entities(iam.ChangeGroup, rowGroup, func(x realmIDs) []string { return x.groups }); err != nil {
		return err
	}
	if err := entities(iam.ChangePolicy, rowPolicy, func(x realmIDs) []string { return x.policies }); err != nil {
		return err
	}
	var tos []string
	for _, x := range realms {
		// edges emits the edges of one kind from one id, to the ids its
		// sets hold (several when an identity and a group share the id).
		edges := func(kind, from string, sets ...iter.Seq[string]) error {
			tos = tos[:0]
			for _, s := range sets {
				tos = slices.AppendSeq(tos, s)
			}
			if len(tos) == 0 {
				return nil
			}
			slices.Sort(tos)
			tos = slices.Compact(tos)
			key = append(append(append(append(append(key[:0], rowEdge...), x.r.ID...), sep...), kind...), sep...)
			key = append(append(key, from...), sep...)
			n := len(key)
			for _, t := range tos {
				key = append(key[:n], t...)
				if err := row(key, present); err != nil {
					return err
				}
			}
			return nil
		}
		// Attachments are keyed by their target, an identity or a group:
		// the two sorted lists merged.
		i, j := 0, 0
		for i < len(x.identities) || j < len(x.groups) {
			c := 1 // the identities done: a group next
			switch {
			case i == len(x.identities):
			case j == len(x.groups):
				c = -1
			default:
				c = strings.Compare(x.identities[i].id, x.groups[j])
			}
			var err error
			switch {
			case c < 0:
				err = edges(edgeAttachment, x.identities[i].id, x.identities[i].Policies.All())
				i++
			case c > 0:
				err = edges(edgeAttachment, x.groups[j], x.r.Groups[x.groups[j]].Policies.All())
				j++
			default:
				err = edges(edgeAttachment, x.groups[j], x.r.Groups[x.groups[j]].Policies.All(), x.identities[i].Policies.All())
				i, j = i+1, j+1
			}
			if err != nil {
				return err
			}
		}
		for _, g := range x.groups {
			if err := edges(edgeMember, g, x.r.Groups[g].Members.All()); err != nil {
				return err
			}
		}
		for _, ident := range x.identities {
			if err := edges(edgeRole, ident.id, ident.Roles.All()); err != nil {
				return err
			}
		}
	}
	for _, k := range others {
		v, ok := Row(st, k)
		if !ok {
			return fmt.Errorf("rows: %q listed but absent", k)
		}
		if err := emit([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}
