package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/logsign"
)

// An entry published straight to the stream, well formed but unsigned, is
// refused by every region's projector: not applied, the region unhealthy,
// the refusal counted in iam_log_entries_refused_total. The all-in-one
// signs its own entries with no flag and writes the public keys a region
// would be given.
func TestDaemon_RefusesUnsignedEntry(t *testing.T) {
	m := daemontest.Start(t, "")
	if _, err := logsign.LoadPublicKeys(m.LogPublicKeysFile()); err != nil {
		t.Fatalf("log public keys: %v", err)
	}
	ctx := context.Background()
	realm := m.Bootstrap.Realm
	st, err := m.Log().JetStream().Stream(ctx, m.Log().StreamName())
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetLastMsgForSubject(ctx, eventlog.RealmSubjects(realm))
	if err != nil {
		t.Fatal(err)
	}
	if last.Header.Get(logsign.SigHeader) == "" {
		t.Fatalf("entry %d: got no signature, want the all-in-one's", last.Sequence)
	}
	for i, rep := range m.Replicas() {
		eventlogtest.Eventually(t, 10*time.Second, "genuine entries applied", func() bool { return rep.Applied() >= last.Sequence })
		if ok, err := m.Projectors()[i].Healthy(); !ok {
			t.Fatalf("region %s: unhealthy before the forged entry: %v", rep.Region(), err)
		}
	}

	msg := nats.NewMsg(last.Subject)
	msg.Data = last.Data
	msg.Header.Set(eventlog.EnvelopeHeader, eventlog.EnvelopeVersion)
	msg.Header.Set(logsign.ExpectHeader, logsign.Expect(realm, last.Sequence))
	js, err := jetstream.New(eventlogtest.MustConnect(t, m.NATSServer()))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	metrics := &daemontest.Client{TB: t, Base: daemontest.URL(m)}
	for i, rep := range m.Replicas() {
		p := m.Projectors()[i]
		eventlogtest.Eventually(t, 10*time.Second, "region unhealthy", func() bool { ok, _ := p.Healthy(); return !ok })
		if _, err := p.Healthy(); !strings.Contains(err.Error(), "unsigned") {
			t.Errorf("region %s: Healthy: got %v, want unsigned", rep.Region(), err)
		}
		if got := rep.Applied(); got >= ack.Sequence {
			t.Errorf("region %s: applied %d, want below the forged entry %d", rep.Region(), got, ack.Sequence)
		}
		body := string(metrics.Must(http.StatusOK, "GET", "/metrics", nil).Raw)
		want := fmt.Sprintf("iam_log_entries_refused_total{reason=%q,region=%q} 1", "unsigned", rep.Region())
		if !strings.Contains(body, want) {
			t.Errorf("metrics: got no %s", want)
		}
	}
}

// After RotateLogKey, the all-in-one restarted on the same data signs with
// the new key (its heartbeats show it), and the public-key file trusts old
// and new: a reader given it verifies the whole log.
func TestRotateLogKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := daemontest.Start(t, dir)
	head, err := m.Log().Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	kid, err := daemon.RotateLogKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	m = daemontest.Start(t, dir)
	v, err := logsign.LoadPublicKeys(m.LogPublicKeysFile())
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Attach(ctx, eventlogtest.MustConnect(t, m.NATSServer()), eventlog.Config{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	var now uint64
	eventlogtest.Eventually(t, 10*time.Second, "a heartbeat after the restart", func() bool {
		now, err = l.Head(ctx)
		return err == nil && now > head
	})
	st, err := l.JetStream().Stream(ctx, l.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetMsg(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if sig := last.Header.Get(logsign.SigHeader); !strings.HasPrefix(sig, kid+".") {
		t.Errorf("entry %d: got signature %.20s…, want one by the new key %s", now, sig, kid)
	}
	n := uint64(0)
	if err := l.Read(ctx, 1, func(iam.LogEntry) error { n++; return nil }); err != nil || n < now {
		t.Fatalf("Read with the rotated public keys: got %d entries (%v), want at least %d", n, err, now)
	}
	for i, p := range m.Projectors() {
		eventlogtest.Eventually(t, 10*time.Second, "applied", func() bool { return m.Replicas()[i].Applied() >= now })
		if ok, err := p.Healthy(); !ok {
			t.Errorf("projector %d: unhealthy: %v", i, err)
		}
	}
}
