package keyvault_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/bus"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/keyvault"
)

// A region's Remote vault reads the keys the hub made, and can neither make
// nor destroy one: not even a pepper of a realm that has none.
func TestRemote_ReadsOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := eventlogtest.MustRunJetStream(t)
	l, err := eventlog.Open(ctx, eventlogtest.MustConnect(t, s), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := keyvault.Open(ctx, l, "")
	if err != nil {
		t.Fatal(err)
	}
	hubBus, regionBus := bus.New(eventlogtest.MustConnect(t, s)), bus.New(eventlogtest.MustConnect(t, s))
	t.Cleanup(hubBus.Close)
	t.Cleanup(regionBus.Close)
	remote := &keyvault.Remote{Bus: regionBus}
	if _, err := remote.DataKey(ctx, "r1", "u1", false); iam.ErrorCode(err) != iam.EUnavailable {
		t.Fatalf("DataKey with no hub serving: got %v, want unavailable", err)
	}
	if _, err := keyvault.Serve(hubBus, hub); err != nil {
		t.Fatal(err)
	}

	made, err := hub.DataKey(ctx, "r1", "u1", true)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := remote.DataKey(ctx, "r1", "u1", false); err != nil || !bytes.Equal(got, made) {
		t.Errorf("DataKey r1/u1: got %x, %v; want the hub's %x", got, err, made)
	}
	if _, err := remote.DataKey(ctx, "r1", "u2", true); iam.ErrorCode(err) != iam.EUnavailable {
		t.Errorf("DataKey with create: got %v, want unavailable", err)
	}
	if _, err := hub.DataKey(ctx, "r1", "u2", false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
		t.Errorf("the hub made r1/u2 for a region: got %v, want none", err)
	}
	if err := remote.Destroy(ctx, "r1", "u1"); iam.ErrorCode(err) != iam.EUnavailable {
		t.Errorf("Destroy: got %v, want unavailable", err)
	}
	if got, err := hub.DataKey(ctx, "r1", "u1", false); err != nil || !bytes.Equal(got, made) {
		t.Errorf("r1/u1 after a region's Destroy: got %x, %v; want it kept", got, err)
	}
	if err := hub.Destroy(ctx, "r1", "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.DataKey(ctx, "r1", "u1", false); !errors.Is(err, keyvault.ErrKeyDestroyed) {
		t.Errorf("DataKey of a destroyed key: got %v, want ErrKeyDestroyed", err)
	}

	if _, err := remote.Pepper(ctx, "r9"); !errors.Is(err, keyvault.ErrKeyDestroyed) {
		t.Errorf("Pepper of a realm without one: got %v, want ErrKeyDestroyed", err)
	}
	if _, err := hub.ExistingPepper(ctx, "r9"); !errors.Is(err, keyvault.ErrKeyDestroyed) {
		t.Errorf("a region's Pepper made r9's pepper on the hub: got %v", err)
	}
	pepper, err := hub.Pepper(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := remote.Pepper(ctx, "r1"); err != nil || !bytes.Equal(got, pepper) {
		t.Errorf("Pepper r1: got %x, %v; want the hub's %x", got, err, pepper)
	}
}
