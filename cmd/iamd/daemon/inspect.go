package daemon

import (
	"context"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/logsign"
	"github.com/iam-project/iam/eventlog/writer"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// The parts of a running Main that the end-to-end tests (package
// daemon_test) reach for what HTTP does not show: the rate limits they
// tune, the read models they digest, the processes they stop to make a
// fault. Each is nil (or empty) before Run and must not be used after
// Close. They are not for the command.

// API returns the HTTP API server, to tune its identity settings
// (api.Server.ConfigureIdentity) in tests.
func (m *Main) API() *api.Server { return m.api }

// Log returns the event log this process reads and (hub, all-in-one)
// writes.
func (m *Main) Log() *eventlog.Log { return m.log }

// Writer returns the log's writer; nil in a region, which forwards writes
// to the hub.
func (m *Main) Writer() *writer.Writer { return m.writer }

// NATSServer returns the embedded NATS server. Shutting it down is how a
// test kills a hub node's share of the cluster.
func (m *Main) NATSServer() *server.Server { return m.ns }

// Replicas returns the read models, one per region served, in the order of
// Config.Regions (a region process: its one).
func (m *Main) Replicas() []*replica.Replica { return m.replicas }

// Projectors returns the projectors feeding Replicas, in the same order.
// Stopping one stalls its region.
func (m *Main) Projectors() []*projector.Projector { return m.projectors }

// JoinedFrom returns the snapshot region loaded at start, and false when it
// loaded none (it replayed the log, or its read model was not empty).
func (m *Main) JoinedFrom(region string) (replica.SnapshotHeader, bool) {
	h, ok := m.joined[region]
	return h, ok
}

// BootstrapNow creates the first realm and admin on an empty log, as Run
// does with Config.Bootstrap, and sets m.Bootstrap. A hub cluster started
// with Bootstrap false does it once, through the node beside the stream's
// leader. It returns nil when the log was not empty.
func (m *Main) BootstrapNow(ctx context.Context) (*writer.BootstrapAdmin, error) {
	b, err := m.bootstrap(ctx)
	if err == nil && b != nil {
		m.Bootstrap = b
	}
	return b, err
}

// InitSecrets creates the token and log signing keys and the idempotency secret in
// dir unless they are there, so that the hub nodes given dir as
// Config.SecretsDir share them; starting them concurrently on an empty dir
// would race to write different ones. It writes the log's public keys
// beside them (log-keys.pub.json), the file regions take as --log-keys.
func InitSecrets(dir string) error {
	_, _, ring, err := loadSecrets(dir, 0) // before the log has an entry: every entry is signed
	if err != nil {
		return err
	}
	return logsign.WritePublicKeys(filepath.Join(dir, logPublicKeysFile), ring.Public())
}
