package replica

// Test hooks: the least the black-box tests need.

// LoadBatch is the loading method that commits the rows in batches, for
// comparison with LoadIngest (load.go).
const LoadBatch = loadBatch

// DigestsWaiting returns how many DigestAt calls wait for r to reach
// their position.
func DigestsWaiting(r *Replica) int {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	n := 0
	for _, ws := range r.stops {
		n += len(ws)
	}
	return n
}
