package replica

// GateWaiting returns how many DigestAt calls wait at rep's Gate.
func GateWaiting(rep *Replica) int {
	v, ok := gates.Load(rep)
	if !ok {
		return 0
	}
	g := v.(*Gate)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, ws := range g.stops {
		n += len(ws)
	}
	return n
}
