package bus_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/bus"
	"github.com/iam-project/iam/eventlog/eventlogtest"
)

func echo(_ context.Context, data []byte) []byte { return append([]byte("re:"), data...) }

func TestBus_RequestServe(t *testing.T) {
	s := eventlogtest.MustRunJetStream(t)
	server, client := bus.New(eventlogtest.MustConnect(t, s)), bus.New(eventlogtest.MustConnect(t, s))
	t.Cleanup(server.Close)
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if _, err := client.Request(ctx, "test.rpc", []byte("x")); iam.ErrorCode(err) != iam.EUnavailable {
		t.Fatalf("request with nobody serving: got %v, want unavailable", err)
	}
	stop, err := server.Serve("test.rpc", "q", echo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Request(ctx, "test.rpc", []byte("x"))
	if err != nil || !bytes.Equal(got, []byte("re:x")) {
		t.Fatalf("request: got %q, %v; want %q", got, err, "re:x")
	}
	stop()
	if _, err := client.Request(ctx, "test.rpc", []byte("x")); iam.ErrorCode(err) != iam.EUnavailable {
		t.Fatalf("request after stop: got %v, want unavailable", err)
	}
}

func TestBus_PublishSubscribe(t *testing.T) {
	s := eventlogtest.MustRunJetStream(t)
	a, b := bus.New(eventlogtest.MustConnect(t, s)), bus.New(eventlogtest.MustConnect(t, s))
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	got := make(chan string, 1)
	if err := b.Subscribe("test.status.*", func(subject string, data []byte) { got <- subject + "=" + string(data) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish("test.status.eu", []byte("1")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "test.status.eu=1" {
			t.Fatalf("got %q, want %q", m, "test.status.eu=1")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
}

func TestWhileLeading_Lead(t *testing.T) {
	s := eventlogtest.MustRunJetStream(t)
	server, client := bus.New(eventlogtest.MustConnect(t, s)), bus.New(eventlogtest.MustConnect(t, s))
	t.Cleanup(server.Close)
	t.Cleanup(client.Close)
	leads := 0
	w := &bus.WhileLeading{Bus: server, Subject: "test.rpc", Queue: "q", Handler: echo,
		OnLead: func() { leads++ }, Logger: slog.New(slog.DiscardHandler)}
	served := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := client.Request(ctx, "test.rpc", []byte("x"))
		return err == nil
	}

	w.Lead(true)
	w.Lead(true) // still leading: serves once, resyncs once
	if !served() || leads != 1 {
		t.Fatalf("leading: served %t, OnLead ran %d times; want true, 1", served(), leads)
	}
	w.Lead(false)
	if served() {
		t.Fatal("no longer leading, yet a request was served")
	}
	w.Lead(true)
	if !served() || leads != 2 {
		t.Fatalf("leading again: served %t, OnLead ran %d times; want true, 2", served(), leads)
	}
	w.Lead(false)
}

// TestBus_DropsStreamDeliveries: a JetStream push consumer aimed at a
// served or subscribed subject (whoever may create consumers picks their
// deliver subject) reaches neither the handler nor the subscriber, while
// what processes publish still does.
func TestBus_DropsStreamDeliveries(t *testing.T) {
	s := eventlogtest.MustRunJetStream(t)
	nc := eventlogtest.MustConnect(t, s)
	b := bus.New(eventlogtest.MustConnect(t, s))
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served, subscribed := make(chan string, 8), make(chan string, 8)
	if _, err := b.Serve("test.rpc", "q", func(_ context.Context, data []byte) []byte {
		served <- string(data)
		return []byte("ok")
	}); err != nil {
		t.Fatal(err)
	}
	// A literal subject: nats-server binds a push consumer only to one.
	if err := b.Subscribe("test.status.eu", func(_ string, data []byte) { subscribed <- string(data) }); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SRC", Subjects: []string{"src.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "src.a", []byte("stream data")); err != nil {
		t.Fatal(err)
	}
	for i, aim := range []struct{ subject, group string }{{"test.rpc", "q"}, {"test.status.eu", ""}} {
		c, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Name: fmt.Sprintf("aim%d", i), DeliverSubject: aim.subject,
			DeliverGroup: aim.group, AckPolicy: jetstream.AckNonePolicy})
		if err != nil {
			t.Fatal(err)
		}
		eventlogtest.Eventually(t, 5*time.Second, "the stream message pushed to "+aim.subject, func() bool {
			ci, err := c.Info(ctx)
			return err == nil && ci.Delivered.Consumer == 1
		})
	}
	// What processes send still arrives, after the deliveries were made.
	if _, err := bus.New(nc).Request(ctx, "test.rpc", []byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("test.status.eu", []byte("status")); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan string{"handler": served, "subscriber": subscribed} {
		want := map[string]string{"handler": "request", "subscriber": "status"}[name]
		select {
		case got := <-ch:
			if got != want {
				t.Errorf("%s got %q first, want %q (a stream delivery got through)", name, got, want)
			}
		case <-ctx.Done():
			t.Fatalf("%s got nothing", name)
		}
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream: %v %v, want one message delivered to both consumers", info, err)
	}
}
