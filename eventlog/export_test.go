package eventlog

// DeleteConsumer lets the benchmarks time ReadRange's consumer way alone.
func DeleteConsumer(l *Log, f *Follower) { l.deleteConsumer(f) }
