package iam

// Consistency modes of a read or check (API.md, Checks): how fresh the
// state that answers must be.
const (
	// MinimizeLatency answers from the replica as it stands.
	MinimizeLatency = "minimize_latency"
	// AtLeastAsFresh answers once the replica has applied a given token.
	AtLeastAsFresh = "at_least_as_fresh"
	// FullyConsistent answers once the replica has applied the log's head.
	FullyConsistent = "fully_consistent"
	// AtExactSnapshot answers as of exactly a given token, however old
	// (docs/history.md).
	AtExactSnapshot = "at_exact_snapshot"
)
