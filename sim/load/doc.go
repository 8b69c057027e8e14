// Package load measures iam's check throughput against a floor: it starts
// the all-in-one stack in-process (as cmd/iamd wires it) and a bare net/http
// server that decodes the same check JSON and answers a same-shaped body,
// then drives both with the same closed-loop generator, for the same time
// and concurrency, on loopback only. The ratio says what iam's work
// (authentication, validation, evaluation on the replica) costs per check
// over HTTP and JSON alone. Its figures are for notes, not a pass/fail test.
package load
