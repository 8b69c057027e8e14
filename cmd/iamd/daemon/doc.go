// Package daemon is iamd's wiring as a library, so that the command, the
// end-to-end tests, iamsim and iamload start the very same process.
//
// With no flags it is the all-in-one: an embedded
// NATS JetStream server holding the log under ./data, one writer, one
// replica per region, and the HTTP API on 127.0.0.1:8080.
//
// `iamd hub ...` runs one node of the hub (a NATS JetStream cluster node
// holding the stream, with a leaf-node listener for regions, plus a writer
// and the API that regions forward writes to); `iamd region --region NAME
// --hub-leaf URL ...` runs a region (a NATS leaf node, a replica following
// the hub's stream across the leaf link, and the API answering reads from
// that replica). See docs/multi-region.md and docs/deploy/.
package daemon
