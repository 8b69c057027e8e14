package iam

import "time"

// SnapshotInfo describes a stored snapshot of a read model: the log
// position it holds the read model at (Seq, and MsgID of the entry there),
// its row count and read-model digest (as the snapshot's own header says),
// its size in bytes and when it was made. Snapshots are stored beside the
// log (eventlog/snapshots) and written and loaded by package replica.
type SnapshotInfo struct {
	Name    string    `json:"name"`
	Seq     uint64    `json:"seq"`
	MsgID   string    `json:"msgId"`
	Rows    uint64    `json:"rows"`
	Digest  string    `json:"digest"`
	Size    uint64    `json:"size"`
	Created time.Time `json:"created"`
}
