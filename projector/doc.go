// Package projector follows the event log from a sink's stored position and
// feeds the sink batches of entries, in order, each exactly once. It owns the
// reconnect and stall-recovery loop of a read side, the checks that the log
// was not rewound under it, and the measures of its lag and propagation
// delay.
package projector
