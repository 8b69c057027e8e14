package eventlog_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// benchWriters is the number of concurrent writers of the parallel cases.
const benchWriters = 32

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func parallel32(b *testing.B) {
	b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
}

// BenchmarkAppend measures Append: sequentially with a realm expectation
// chained from each append's sequence (a single writer per realm), and with
// 32 concurrent writers on distinct realms (MsgID, no expectation).
func BenchmarkAppend(b *testing.B) {
	eventlogtest.ForEachSync(b, func(b *testing.B, l *eventlog.Log) {
		ctx := context.Background()
		b.Run("seq", func(b *testing.B) {
			realm := fmt.Sprintf("seq%d", b.N)
			subj, _ := eventlog.Subject(realm, "g")
			commits := commit(realm, "g")
			var last uint64
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				seq, err := l.Append(ctx, eventlog.AppendRequest{
					Subject: subj, Commits: commits, MsgID: fmt.Sprintf("%s-%d", realm, i),
					ExpectRealm: realm, ExpectSeq: last,
				})
				if err != nil {
					b.Fatal(err)
				}
				last = seq
			}
			reportRate(b)
		})
		b.Run("parallel32", func(b *testing.B) {
			var writer atomic.Int64
			parallel32(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := writer.Add(1)
				realm := fmt.Sprintf("par%d_%d", b.N, w)
				subj, _ := eventlog.Subject(realm, "g")
				commits := commit(realm, "g")
				for i := 0; pb.Next(); i++ {
					if _, err := l.Append(ctx, eventlog.AppendRequest{
						Subject: subj, Commits: commits, MsgID: fmt.Sprintf("%s-%d", realm, i),
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b)
		})
	})
}

// BenchmarkRawPublish is BenchmarkAppend's baseline: a bare js.Publish of
// the same body, no headers, no expectation.
func BenchmarkRawPublish(b *testing.B) {
	eventlogtest.ForEachSync(b, func(b *testing.B, l *eventlog.Log) {
		ctx := context.Background()
		js := l.JetStream()
		data, err := iam.MarshalCommits(commit("raw", "g"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run("seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := js.Publish(ctx, "iam.evt.raw.g", data); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
		b.Run("parallel32", func(b *testing.B) {
			var writer atomic.Int64
			parallel32(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				subj := fmt.Sprintf("iam.evt.raw%d.g", writer.Add(1))
				for pb.Next() {
					if _, err := js.Publish(ctx, subj, data); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b)
		})
	})
}

// BenchmarkRead measures Read (ordered consumer) over a stored log.
func BenchmarkRead(b *testing.B) {
	const n = 20000
	l := eventlogtest.MustOpenLog(b, eventlog.Config{})
	js := l.JetStream()
	data, _ := iam.MarshalCommits(commit("r", "g"))
	for range n {
		// Envelope header required by readers.
		m := newEnvelopeMsg("iam.evt.r.g", data)
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	readAll(b, l, n)
}

// readAll measures reading the whole log of n entries, again and again.
func readAll(b *testing.B, l *eventlog.Log, n int) {
	ctx := context.Background()
	b.ResetTimer()
	total := 0
	for b.Loop() {
		got := 0
		if err := l.Read(ctx, 1, func(iam.LogEntry) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("read %d entries, want %d", got, n)
		}
		total += got
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReadTransport compares the transports Read could use, without
// decoding: an ordered consumer with Consume (what Read uses) and Fetch
// batches on an ephemeral pull consumer.
func BenchmarkReadTransport(b *testing.B) {
	const n = 20000
	l := eventlogtest.MustOpenLog(b, eventlog.Config{})
	ctx := context.Background()
	js := l.JetStream()
	data, _ := iam.MarshalCommits(commit("r", "g"))
	for range n {
		if _, err := js.PublishMsgAsync(newEnvelopeMsg("iam.evt.r.g", data)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.Run("ordered-consume", func(b *testing.B) {
		for b.Loop() {
			c, err := js.OrderedConsumer(ctx, l.StreamName(), jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			var got int
			cc, err := c.Consume(func(m jetstream.Msg) {
				if got++; got == n {
					close(done)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			<-done
			cc.Stop()
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	for _, batch := range []int{500, 5000} {
		b.Run(fmt.Sprintf("fetch%d", batch), func(b *testing.B) {
			for b.Loop() {
				c, err := js.CreateConsumer(ctx, l.StreamName(), jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true})
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for got < n {
					mb, err := c.Fetch(batch, jetstream.FetchMaxWait(time.Second))
					if err != nil {
						b.Fatal(err)
					}
					for range mb.Messages() {
						got++
					}
				}
				_ = js.DeleteConsumer(ctx, l.StreamName(), c.CachedInfo().Name)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkReadRange compares, over ranges of a 20k-entry log (the replay
// at_exact_snapshot does after a checkpoint), a consumer made and deleted
// for each range against one Get per entry: ReadRange's two ways.
func BenchmarkReadRange(b *testing.B) {
	const n = 20000
	l := eventlogtest.MustOpenLog(b, eventlog.Config{})
	js := l.JetStream()
	data, _ := iam.MarshalCommits(commit("r", "g"))
	for range n {
		if _, err := js.PublishMsgAsync(newEnvelopeMsg("iam.evt.r.g", data)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	ctx := context.Background()
	for _, size := range []uint64{1, 16, 128, 1000} {
		b.Run(fmt.Sprintf("consumer/%d", size), func(b *testing.B) {
			from := uint64(1)
			for b.Loop() {
				f, err := l.Follow(ctx, from)
				if err != nil {
					b.Fatal(err)
				}
				for got := uint64(0); got < size; {
					batch, err := f.Next(ctx, int(size-got))
					if err != nil {
						b.Fatal(err)
					}
					got += uint64(len(batch))
				}
				eventlog.DeleteConsumer(l, f)
				from = from%(n-size) + 1
			}
		})
		b.Run(fmt.Sprintf("get/%d", size), func(b *testing.B) {
			from := uint64(1)
			for b.Loop() {
				for s := from; s < from+size; s++ {
					if _, err := l.Get(ctx, s); err != nil {
						b.Fatal(err)
					}
				}
				from = from%(n-size) + 1
			}
		})
	}
}
