package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
)

// commit returns one commit whose actor is name. It carries a heartbeat
// event, the event type least likely to change shape.
func commit(realm, name string) []iam.Commit {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []iam.Commit{{
		Actor:          name,
		IdempotencyKey: realm,
		At:             at,
		Events:         []iam.Event{iam.Heartbeat{At: at}},
	}}
}

func mustSubject(tb testing.TB, realm, agg string) string {
	tb.Helper()
	s, err := eventlog.Subject(realm, agg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustAppend(tb testing.TB, l *eventlog.Log, req eventlog.AppendRequest) uint64 {
	tb.Helper()
	seq, err := l.Append(context.Background(), req)
	if err != nil {
		tb.Fatalf("append %s: %v", req.Subject, err)
	}
	return seq
}

func TestSubject(t *testing.T) {
	tests := []struct {
		realm, agg string
		want       string
		wantErr    bool
	}{
		{"r1", "group-1", "iam.evt.r1.group-1", false},
		{"_sys", "heartbeat", eventlog.HeartbeatSubject, false},
		{"", "a", "", true},
		{"r", "", "", true},
		{"r.x", "a", "", true},
		{"r", "a.b", "", true},
		{"r*", "a", "", true},
		{"r", ">", "", true},
		{"r 1", "a", "", true},
		{"r", "a\tb", "", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%q", tt.realm, tt.agg), func(t *testing.T) {
			got, err := eventlog.Subject(tt.realm, tt.agg)
			if tt.wantErr {
				if code := iam.ErrorCode(err); code != iam.EInvalid {
					t.Fatalf("got code %q (err %v), want %q", code, err, iam.EInvalid)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
	if got, want := eventlog.RealmSubjects("r1"), "iam.evt.r1.>"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLog_AppendInvalid(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx := context.Background()
	for _, req := range []eventlog.AppendRequest{
		{Subject: "other.subject", Commits: commit("r", "g")},
		{Subject: "iam.evt.r", Commits: commit("r", "g")},
		{Subject: "iam.evt.r.a.b", Commits: commit("r", "g")},
		{Subject: "iam.evt.r.*", Commits: commit("r", "g")},
		{Subject: "iam.evt.r.a", Commits: nil},
		{Subject: "iam.evt.r.a", Commits: commit("r", "g"), ExpectRealm: "r.>"},
	} {
		_, err := l.Append(ctx, req)
		if code := iam.ErrorCode(err); code != iam.EInvalid {
			t.Errorf("append %+v: got code %q (%v), want %q", req.Subject, code, err, iam.EInvalid)
		}
	}
}

func TestLog_AppendRead(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx := context.Background()

	head, err := l.Head(ctx)
	if err != nil || head != 0 {
		t.Fatalf("head of empty log: got %d, %v, want 0", head, err)
	}
	var want []uint64
	for i := range 10 {
		seq := mustAppend(t, l, eventlog.AppendRequest{
			Subject: mustSubject(t, "r1", fmt.Sprintf("g%d", i%3)),
			Commits: commit("r1", fmt.Sprintf("g%d", i)),
			MsgID:   fmt.Sprintf("m%d", i),
		})
		want = append(want, seq)
	}
	for i, seq := range want {
		if seq != uint64(i+1) {
			t.Fatalf("append %d: got seq %d, want %d", i, seq, i+1)
		}
	}
	if head, err = l.Head(ctx); err != nil || head != 10 {
		t.Fatalf("head: got %d, %v, want 10", head, err)
	}

	t.Run("Get", func(t *testing.T) {
		e, err := l.Get(ctx, 4)
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != 4 || e.MsgID != "m3" || e.Subject != "iam.evt.r1.g0" || e.Time.IsZero() {
			t.Fatalf("got %+v, want seq 4, msg id m3, subject iam.evt.r1.g0, a time", e)
		}
		if len(e.Commits) != 1 || len(e.Commits[0].Events) != 1 {
			t.Fatalf("got commits %+v, want 1 commit of 1 event", e.Commits)
		}
		if got, want := e.Commits[0].Actor, "g3"; got != want {
			t.Fatalf("got actor %q, want %q", got, want)
		}
		if _, ok := e.Commits[0].Events[0].(iam.Heartbeat); !ok {
			t.Fatalf("got event %#v, want an iam.Heartbeat", e.Commits[0].Events[0])
		}
		_, err = l.Get(ctx, 11)
		if code := iam.ErrorCode(err); code != iam.ENotFound {
			t.Fatalf("get 11: got code %q (%v), want %q", code, err, iam.ENotFound)
		}
	})

	t.Run("Read", func(t *testing.T) {
		for _, from := range []uint64{0, 1, 5, 10, 11} {
			var got []uint64
			err := l.Read(ctx, from, func(e iam.LogEntry) error {
				got = append(got, e.Seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			start := max(from, 1)
			if len(got) != int(11-start) {
				t.Fatalf("read from %d: got %v, want %d..10", from, got, start)
			}
			for i, s := range got {
				if s != start+uint64(i) {
					t.Fatalf("read from %d: got %v, want %d..10", from, got, start)
				}
			}
		}
		stop := errors.New("stop")
		n := 0
		err := l.Read(ctx, 1, func(iam.LogEntry) error {
			n++
			if n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 3 {
			t.Fatalf("got %v after %d entries, want the callback's error after 3", err, n)
		}
	})

	t.Run("LastForRealm", func(t *testing.T) {
		mustAppend(t, l, eventlog.AppendRequest{Subject: mustSubject(t, "r2", "x"), Commits: commit("r2", "x")})
		for realm, want := range map[string]uint64{"r1": 10, "r2": 11, "r3": 0} {
			got, err := l.LastForRealm(ctx, realm)
			if err != nil || got != want {
				t.Errorf("last for %s: got %d, %v, want %d", realm, got, err, want)
			}
		}
	})
}

func TestLog_AppendExpectRealm(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx := context.Background()

	// ExpectSeq 0 on a realm with no message: accepted.
	s1 := mustAppend(t, l, eventlog.AppendRequest{
		Subject: mustSubject(t, "acme", "g1"), Commits: commit("acme", "g1"), ExpectRealm: "acme", ExpectSeq: 0,
	})
	// Another realm's messages do not count.
	mustAppend(t, l, eventlog.AppendRequest{Subject: mustSubject(t, "other", "g1"), Commits: commit("other", "g1")})
	s2 := mustAppend(t, l, eventlog.AppendRequest{
		Subject: mustSubject(t, "acme", "g2"), Commits: commit("acme", "g2"), ExpectRealm: "acme", ExpectSeq: s1,
	})
	// ExpectSeq 0 on a realm that has messages: conflict.
	_, err := l.Append(ctx, eventlog.AppendRequest{
		Subject: mustSubject(t, "acme", "g3"), Commits: commit("acme", "g3"), ExpectRealm: "acme", ExpectSeq: 0,
	})
	if code := iam.ErrorCode(err); code != iam.EConflict {
		t.Fatalf("expect 0 on non-empty realm: got code %q (%v), want %q", code, err, iam.EConflict)
	}
	// A stale expectation on another subject of the realm: conflict.
	_, err = l.Append(ctx, eventlog.AppendRequest{
		Subject: mustSubject(t, "acme", "g1"), Commits: commit("acme", "g1"), ExpectRealm: "acme", ExpectSeq: s1,
	})
	if code := iam.ErrorCode(err); code != iam.EConflict {
		t.Fatalf("stale expectation: got code %q (%v), want %q", code, err, iam.EConflict)
	}
	if last, err := l.LastForRealm(ctx, "acme"); err != nil || last != s2 {
		t.Fatalf("last for acme: got %d, %v, want %d", last, err, s2)
	}

	t.Run("RacingWriters", func(t *testing.T) {
		// Writers that read the realm's head and append conditionally:
		// exactly one wins each round.
		const writers, rounds = 8, 10
		base, err := l.LastForRealm(ctx, "race")
		if err != nil {
			t.Fatal(err)
		}
		for r := range rounds {
			var wg sync.WaitGroup
			var mu sync.Mutex
			won, conflicts := 0, 0
			for w := range writers {
				wg.Go(func() {
					_, err := l.Append(ctx, eventlog.AppendRequest{
						Subject:     mustSubject(t, "race", fmt.Sprintf("w%d", w)),
						Commits:     commit("race", fmt.Sprintf("r%dw%d", r, w)),
						ExpectRealm: "race", ExpectSeq: base,
					})
					mu.Lock()
					defer mu.Unlock()
					switch iam.ErrorCode(err) {
					case "":
						won++
					case iam.EConflict:
						conflicts++
					default:
						t.Errorf("append: %v", err)
					}
				})
			}
			wg.Wait()
			if won != 1 || conflicts != writers-1 {
				t.Fatalf("round %d: got %d winners and %d conflicts, want 1 and %d", r, won, conflicts, writers-1)
			}
			if base, err = l.LastForRealm(ctx, "race"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestLog_AppendDuplicate(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx := context.Background()
	subj := mustSubject(t, "r", "g")
	s1 := mustAppend(t, l, eventlog.AppendRequest{Subject: subj, Commits: commit("r", "a"), MsgID: "idem-1"})
	mustAppend(t, l, eventlog.AppendRequest{Subject: subj, Commits: commit("r", "b"), MsgID: "idem-2"})
	s3 := mustAppend(t, l, eventlog.AppendRequest{Subject: subj, Commits: commit("r", "a"), MsgID: "idem-1"})
	if s3 != s1 {
		t.Fatalf("duplicate: got seq %d, want the original %d", s3, s1)
	}
	// With a realm expectation that is still current, the duplicate is
	// also answered with the original sequence.
	s4 := mustAppend(t, l, eventlog.AppendRequest{Subject: subj, Commits: commit("r", "a"), MsgID: "idem-1", ExpectRealm: "r", ExpectSeq: 2})
	if s4 != s1 {
		t.Fatalf("duplicate with current expectation: got seq %d, want %d", s4, s1)
	}
	if head, err := l.Head(ctx); err != nil || head != 2 {
		t.Fatalf("head: got %d, %v, want 2 (stored once)", head, err)
	}
}

func TestLog_Follow(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subj := mustSubject(t, "r", "g")
	for i := range 5 {
		mustAppend(t, l, eventlog.AppendRequest{Subject: subj, Commits: commit("r", fmt.Sprint(i))})
	}
	f, err := l.Follow(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var got []uint64
	next := func(want int) {
		t.Helper()
		for len(got) < want {
			batch, err := f.Next(ctx, 2)
			if err != nil {
				t.Fatalf("next after %v: %v", got, err)
			}
			if len(batch) == 0 || len(batch) > 2 {
				t.Fatalf("got a batch of %d, want 1..2", len(batch))
			}
			for _, e := range batch {
				got = append(got, e.Seq)
			}
		}
	}
	next(3)
	if f.Head() != 5 {
		t.Fatalf("follower head: got %d, want 5", f.Head())
	}
	for i := range 4 {
		mustAppend(t, l, eventlog.AppendRequest{Subject: subj, Commits: commit("r", fmt.Sprint(i))})
	}
	next(7)
	for i, s := range got {
		if s != uint64(i+3) {
			t.Fatalf("got %v, want 3..9 in order", got)
		}
	}
	f.Stop()
	if _, err := f.Next(ctx, 0); !errors.Is(err, eventlog.ErrFollowerStopped) {
		t.Fatalf("next after stop: got %v, want %v", err, eventlog.ErrFollowerStopped)
	}
}

func TestLog_UnknownEnvelope(t *testing.T) {
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mustAppend(t, l, eventlog.AppendRequest{Subject: mustSubject(t, "r", "g"), Commits: commit("r", "g")})
	m := nats.NewMsg("iam.evt.r.g")
	m.Header.Set(eventlog.EnvelopeHeader, "2")
	m.Data, _ = iam.MarshalCommits(commit("r", "g"))
	if _, err := l.JetStream().PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, 2); !errors.Is(err, eventlog.ErrEnvelope) {
		t.Fatalf("get: got %v, want %v", err, eventlog.ErrEnvelope)
	}
	f, err := l.Follow(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var seqs []uint64
	for {
		batch, err := f.Next(ctx, 0)
		for _, e := range batch {
			seqs = append(seqs, e.Seq)
		}
		if err != nil {
			if !errors.Is(err, eventlog.ErrEnvelope) || len(seqs) != 1 {
				t.Fatalf("follow: got %v after %v, want %v after [1]", err, seqs, eventlog.ErrEnvelope)
			}
			break
		}
	}
}

func TestLog_AppendOwnWriteAfterConflict(t *testing.T) {
	// A message stored by an attempt whose ack was lost, then re-published
	// with the same MsgID and the now stale expectation: on R1 the server
	// checks the expectation before de-duplication, so the re-publish is a
	// conflict. Append must recognise its own write.
	l := eventlogtest.MustOpenLog(t, eventlog.Config{})
	ctx := context.Background()
	mustAppend(t, l, eventlog.AppendRequest{Subject: mustSubject(t, "r", "a"), Commits: commit("r", "a")})

	m := nats.NewMsg("iam.evt.r.b")
	m.Header.Set(eventlog.EnvelopeHeader, eventlog.EnvelopeVersion)
	m.Data, _ = iam.MarshalCommits(commit("r", "b"))
	ack, err := l.JetStream().PublishMsg(ctx, m, jetstream.WithMsgID("lost-ack"), jetstream.WithExpectLastSequenceForSubject(1, "iam.evt.r.>"))
	if err != nil {
		t.Fatal(err)
	}

	// What the server itself answers to the bare re-publish.
	m = nats.NewMsg("iam.evt.r.b")
	m.Header.Set(eventlog.EnvelopeHeader, eventlog.EnvelopeVersion)
	m.Data, _ = iam.MarshalCommits(commit("r", "b"))
	_, rawErr := l.JetStream().PublishMsg(ctx, m, jetstream.WithMsgID("lost-ack"), jetstream.WithExpectLastSequenceForSubject(1, "iam.evt.r.>"))
	var apiErr *jetstream.APIError
	if errors.As(rawErr, &apiErr) {
		t.Logf("server answer to a duplicate with a stale expectation: %d %s", apiErr.ErrorCode, apiErr.Description)
	} else {
		t.Logf("server answer to a duplicate with a stale expectation: %v", rawErr)
	}

	seq, err := l.Append(ctx, eventlog.AppendRequest{
		Subject: "iam.evt.r.b", Commits: commit("r", "b"), MsgID: "lost-ack", ExpectRealm: "r", ExpectSeq: 1,
	})
	if err != nil || seq != ack.Sequence {
		t.Fatalf("got %d, %v, want %d", seq, err, ack.Sequence)
	}
	// A different MsgID with the same stale expectation is a real conflict.
	_, err = l.Append(ctx, eventlog.AppendRequest{
		Subject: "iam.evt.r.b", Commits: commit("r", "c"), MsgID: "other", ExpectRealm: "r", ExpectSeq: 1,
	})
	if code := iam.ErrorCode(err); code != iam.EConflict {
		t.Fatalf("got code %q (%v), want %q", code, err, iam.EConflict)
	}
	if head, _ := l.Head(ctx); head != 2 {
		t.Fatalf("head: got %d, want 2", head)
	}
}

func TestLog_AppendUnavailable(t *testing.T) {
	dir := t.TempDir()
	s1 := eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: dir, Port: -1})
	port := s1.Addr().(*net.TCPAddr).Port
	nc := eventlogtest.MustConnect(t, s1)
	var mu sync.Mutex
	var causes []string
	l, err := eventlog.Open(context.Background(), nc, eventlog.Config{
		PublishTimeout: 50 * time.Millisecond,
		MaxRetries:     2,
		OnRetry: func(cause string) {
			mu.Lock()
			defer mu.Unlock()
			causes = append(causes, cause)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, eventlog.AppendRequest{Subject: mustSubject(t, "r", "a"), Commits: commit("r", "a")})
	s1.Shutdown()
	s1.WaitForShutdown()

	req := eventlog.AppendRequest{Subject: mustSubject(t, "r", "a"), Commits: commit("r", "b"), MsgID: "retried", ExpectRealm: "r", ExpectSeq: 1}
	_, err = l.Append(context.Background(), req)
	if code := iam.ErrorCode(err); code != iam.EUnavailable {
		t.Fatalf("server down: got code %q (%v), want %q", code, err, iam.EUnavailable)
	}
	mu.Lock()
	if len(causes) != 2 {
		t.Fatalf("got retries %v, want 2", causes)
	}
	mu.Unlock()

	eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: dir, Port: port})
	eventlogtest.Eventually(t, 20*time.Second, "reconnect", nc.IsConnected)
	// The caller retries with the same MsgID; whether or not an attempt
	// reached the old server, the message is stored once.
	seq, err := l.Append(context.Background(), req)
	if err != nil || seq != 2 {
		t.Fatalf("after restart: got %d, %v, want 2", seq, err)
	}
	if seq, err = l.Append(context.Background(), req); err != nil || seq != 2 {
		t.Fatalf("repeat: got %d, %v, want 2", seq, err)
	}
}

func newEnvelopeMsg(subject string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(eventlog.EnvelopeHeader, eventlog.EnvelopeVersion)
	m.Data = data
	return m
}
