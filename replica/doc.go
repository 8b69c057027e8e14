// Package replica is a region's read side: the Pebble read model (each batch
// of events and the new position committed in one Pebble batch), the
// in-memory index that answers checks from it, the three consistency modes,
// waiting for a consistency token without polling, and lag figures.
//
// Pebble is the durable form: a replica killed at any instant reopens at its
// stored position with exactly the state of that prefix of the log. Checks
// are answered from an in-memory index (iam.State) loaded from Pebble at open
// and kept in step with it by the same events, because a check must cost
// microseconds, not the several Pebble reads a group walk needs.
package replica
