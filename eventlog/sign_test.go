package eventlog_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/logsign"
)

func logKeys(tb testing.TB) (*logsign.Signer, *logsign.Verifier) {
	tb.Helper()
	var r logsign.Ring
	if err := r.Rotate(time.Now()); err != nil {
		tb.Fatal(err)
	}
	v, err := logsign.NewVerifier(r.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return r.Signer(), v
}

// Append signs what a verifying reader accepts, heartbeats included; a
// message stored without a signature fails Get and Follow with ErrUnsigned,
// and a realm's entry must carry its signed expectation.
func TestLog_Signed(t *testing.T) {
	ctx := context.Background()
	signer, verifier := logKeys(t)
	l := eventlogtest.MustOpenLog(t, eventlog.Config{Signer: signer, Verifier: verifier})
	seq, err := l.Append(ctx, eventlog.AppendRequest{Subject: mustSubject(t, "r1", "commit"), Commits: commit("r1", "a"), ExpectRealm: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Get(ctx, seq)
	if err != nil || e.ExpectRealm != "r1" || e.ExpectSeq != 0 {
		t.Fatalf("Get %d: got %+v (%v), want the entry with its expectation r1 0", seq, e, err)
	}
	later := func() time.Time { return time.Now().Add(time.Hour) } // the log is idle
	if err := (&eventlog.Heartbeater{Log: l, Now: later}).Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, seq+1); err != nil {
		t.Fatalf("Get heartbeat: got %v, want nil", err)
	}
	// Appended without an expectation: signed, but a realm's entry
	// without one could be replayed unnoticed.
	noExpect, err := l.Append(ctx, eventlog.AppendRequest{Subject: mustSubject(t, "r1", "commit"), Commits: commit("r1", "b")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := iam.MarshalCommits(commit("r1", "c"))
	ack, err := l.JetStream().PublishMsg(ctx, newEnvelopeMsg(mustSubject(t, "r1", "commit"), data))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seq  uint64
		want error
	}{{noExpect, eventlog.ErrUnsigned}, {ack.Sequence, eventlog.ErrUnsigned}} {
		if _, err := l.Get(ctx, tc.seq); !errors.Is(err, tc.want) {
			t.Errorf("Get %d: got %v, want %v", tc.seq, err, tc.want)
		}
	}
	f, err := l.Follow(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var got []uint64
	for {
		batch, err := f.Next(ctx, 0)
		for _, e := range batch {
			got = append(got, e.Seq)
		}
		if err != nil {
			if !errors.Is(err, eventlog.ErrUnsigned) || len(got) != 2 {
				t.Fatalf("Follow: got %v after %v, want ErrUnsigned after 2 entries", err, got)
			}
			break
		}
	}
}

// BenchmarkReadVerify is BenchmarkRead over signed entries, with and
// without verification: the replay rate a region gets from its log.
func BenchmarkReadVerify(b *testing.B) {
	const n = 20000
	signer, verifier := logKeys(b)
	for _, tc := range []struct {
		name string
		v    eventlog.Verifier
	}{{"off", nil}, {"on", verifier}} {
		b.Run(tc.name, func(b *testing.B) {
			l := eventlogtest.MustOpenLog(b, eventlog.Config{Verifier: tc.v})
			js := l.JetStream()
			data, _ := iam.MarshalCommits(commit("r", "g"))
			for i := range n {
				m := newEnvelopeMsg("iam.evt.r.g", data)
				msgID, expect := "m"+itoa(i), logsign.Expect("r", uint64(i))
				m.Header.Set(jetstream.MsgIDHeader, msgID)
				m.Header.Set(logsign.ExpectHeader, expect)
				m.Header.Set(logsign.SigHeader, signer.Sign(logsign.Entry(m.Subject, msgID, expect, data)))
				if _, err := js.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
			<-js.PublishAsyncComplete()
			readAll(b, l, n)
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A log written before signing existed stays readable by a verifier whose
// ring signs from the entry after its head, while an unsigned entry after
// that head is refused: nothing can be slipped in below it.
func TestLog_SignedFrom(t *testing.T) {
	ctx := context.Background()
	plain := eventlogtest.MustOpenLog(t, eventlog.Config{})
	var old []uint64
	for _, name := range []string{"a", "b"} {
		seq, err := plain.Append(ctx, eventlog.AppendRequest{Subject: mustSubject(t, "r1", "commit"), Commits: commit("r1", name)})
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, seq)
	}
	head, err := plain.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ring := logsign.Ring{SignedFrom: head + 1}
	if err := ring.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	v, err := logsign.NewVerifier(ring.Public())
	if err != nil {
		t.Fatal(err)
	}
	signed := plain.WithSigning(ring.Signer(), v)
	for _, seq := range old {
		if _, err := signed.Get(ctx, seq); err != nil {
			t.Errorf("Get unsigned %d below SignedFrom %d: got %v, want nil", seq, head+1, err)
		}
	}
	seq, err := signed.Append(ctx, eventlog.AppendRequest{Subject: mustSubject(t, "r1", "commit"), Commits: commit("r1", "c"), ExpectRealm: "r1", ExpectSeq: head})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signed.Get(ctx, seq); err != nil {
		t.Errorf("Get signed %d: got %v, want nil", seq, err)
	}
	late, err := plain.Append(ctx, eventlog.AppendRequest{Subject: mustSubject(t, "r1", "commit"), Commits: commit("r1", "d")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signed.Get(ctx, late); !errors.Is(err, eventlog.ErrUnsigned) {
		t.Errorf("Get unsigned %d after SignedFrom: got %v, want ErrUnsigned", late, err)
	}
	if err := signed.Read(ctx, 1, func(e iam.LogEntry) error { return nil }); !errors.Is(err, eventlog.ErrUnsigned) {
		t.Errorf("Read the whole log: got %v, want ErrUnsigned at %d", err, late)
	}
}
