package replica

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// A replica catching up loads its read model as a bulk load does: it holds
// Pebble's compactions back until it has caught up, or until level 0 is
// maxHeldFlushes sublevels deep. In a replay of 1.1M entries compactions
// took a third of the CPU, on the core beside the apply (docs/benchmarks.md);
// its row keys spread over the whole key space, so each compaction
// rewrites much of the bottom level again. Held back, the tables flushed
// meanwhile are compacted together once. Checks never read Pebble (the
// index answers them); a whole scan (a restart, a snapshot, a checkpoint
// file) merges the deeper level 0 meanwhile.

// maxHeldFlushes bounds how deep a hold lets level 0 grow, in sublevels
// (those at its start, and one a flush since): past it the gate opens
// until the hold is released and taken again, so that a catch-up of tens
// of millions of entries leaves a level 0 of tens of tables, not of
// thousands.
const maxHeldFlushes = 48

// l0StopWrites is the Store's Pebble L0StopWritesThreshold: above the
// sublevels a hold can leave, so that a hold never stalls the writes it
// waits for (nothing would ever compact them).
const l0StopWrites = maxHeldFlushes + 16

// compactionGate is the Store's Pebble compaction scheduler
// (pebble.CompactionScheduler). It grants what the DB allows without
// permission (GetAllowedWithoutPermission), as Pebble's own scheduler
// does, except while it is held.
//
// Pebble calls TrySchedule with its own mutex held, and, after a refusal,
// waits for the scheduler to offer the compaction back (GetWaitingCompaction
// and Schedule, which take that mutex): grant does so, when a compaction
// ends (Done), when the hold ends (release), and after a flush that ended
// it (UpdateGetAllowedWithoutPermission, called with Pebble's mutex held,
// so on a goroutine of its own).
type compactionGate struct {
	db pebble.DBForCompaction // set by Register, before any other call

	mu       sync.Mutex
	running  int  // compactions granted and not yet done
	held     bool // hold was called since the last release
	depth    int  // level 0's sublevels when the hold was taken, plus one a flush since
	granting bool // grant is offering compactions; Unregister waits for it
	idle     *sync.Cond
	closed   bool
	grants   sync.WaitGroup // the goroutines UpdateGetAllowedWithoutPermission started
}

func newCompactionGate() *compactionGate {
	g := &compactionGate{}
	g.idle = sync.NewCond(&g.mu)
	return g
}

// holding says whether compactions are held back; g.mu is held.
func (g *compactionGate) holding() bool { return g.held && g.depth < maxHeldFlushes }

// hold holds compactions back until release, or until level 0 is
// maxHeldFlushes sublevels deep: l0 tells how deep it is now. Compactions
// running go on.
func (g *compactionGate) hold(l0 func() int) {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held {
		return
	}
	// Not under g.mu: l0 takes Pebble's mutex, under which Pebble calls
	// the gate.
	depth := l0()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held {
		g.held, g.depth = true, depth
	}
}

// release lets compactions run again, and offers the DB those it was
// refused.
func (g *compactionGate) release() {
	g.mu.Lock()
	if !g.held {
		g.mu.Unlock()
		return
	}
	g.held = false
	g.mu.Unlock()
	g.grant()
}

// Register implements pebble.CompactionScheduler.
func (g *compactionGate) Register(_ int, db pebble.DBForCompaction) { g.db = db }

// Unregister implements pebble.CompactionScheduler: no call into the DB
// follows it, and no goroutine of the gate outlives it. (Pebble calls it
// without the locks the DB's methods take, so a grant under way can end.)
func (g *compactionGate) Unregister() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.grants.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.granting {
		g.idle.Wait()
	}
}

// TrySchedule implements pebble.CompactionScheduler.
func (g *compactionGate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.holding() || g.running >= g.db.GetAllowedWithoutPermission() {
		return false, nil
	}
	g.running++
	return true, g
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
// Pebble calls it after each flush, which is how the gate counts them.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holding() {
		g.depth++
	}
	if !g.closed && !g.holding() && g.running < g.db.GetAllowedWithoutPermission() {
		g.grants.Add(1)
		go func() {
			defer g.grants.Done()
			g.grant()
		}()
	}
}

// Started, MeasureCPU and CumulativeStats implement
// pebble.CompactionGrantHandle; the gate paces nothing.
func (g *compactionGate) Started()                                          {}
func (g *compactionGate) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (g *compactionGate) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle: Pebble calls it without
// its locks held.
func (g *compactionGate) Done() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	g.grant()
}

// grant offers the DB compactions while it has some waiting and they are
// allowed. One grant runs at a time.
func (g *compactionGate) grant() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.granting {
		g.idle.Wait()
	}
	g.granting = true
	defer func() {
		g.granting = false
		g.idle.Broadcast()
	}()
	for !g.closed && !g.holding() && g.running < g.db.GetAllowedWithoutPermission() {
		g.running++ // before Done can be called for it
		g.mu.Unlock()
		accepted := false
		if waiting, _ := g.db.GetWaitingCompaction(); waiting {
			accepted = g.db.Schedule(g)
		}
		g.mu.Lock()
		if !accepted {
			g.running--
			return
		}
	}
}
