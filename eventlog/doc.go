// Package eventlog is the event log: the JetStream stream that is the iam
// service's source of truth. It owns the stream's configuration and
// subjects, the message envelope, conditional and idempotent appends
// (Append, the consistency token is the stream sequence), reading and
// following the log from a sequence (Get, Read, Follow), and the hub's
// heartbeats that keep an idle log's newest entry fresh.
//
// Every message of the stream is one iam.LogEntry: its body is
// iam.MarshalCommits output and its Iam-Envelope header names the envelope
// version. Siblings talk to this package in iam terms.
//
// Its subpackages hold the other NATS-backed parts, each with one job:
// natsnode (embedded servers and topology), writer (the command side:
// decide, group commit, conflict retry), bus (request/reply between
// processes), keyvault (personal-data keys outside the log), snapshots
// (read-model snapshots beside the log), eventlogtest (real servers for
// tests).
package eventlog
