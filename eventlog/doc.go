// Package eventlog owns the JetStream stream that is the iam service's source
// of truth: the embedded server used in all-in-one mode and in tests, the
// stream's configuration, subjects, the message envelope, conditional and
// idempotent appends, and reading the log from a sequence.
//
// Every message of the stream is one iam.LogEntry: its body is
// iam.MarshalCommits output and its Iam-Envelope header names the envelope
// version. Siblings talk to this package in iam terms; only this package (and
// wiring and tests) imports nats.go and nats-server.
package eventlog
