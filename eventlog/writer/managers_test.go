package writer_test

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/writer"
)

// TestWriter_AppsPerUserUnderConcurrency: many writers, in two writer
// processes, race to make one user the manager of more apps (creating apps
// as it, and adding it to others) while others take it off some; the user
// never manages more apps than the limit, after any entry of the log.
func TestWriter_AppsPerUserUnderConcurrency(t *testing.T) {
	const (
		realm      = "own"
		others     = 30 // apps made by the bot, which u is added to and taken from
		goroutines = 16
		budget     = 40
	)
	limits := iam.DefaultLimits()
	limits.AppsPerManager = 12 // reached within the budget
	s := eventlogtest.MustRunJetStream(t)
	logA, logB := openLogOn(t, s), openLogOn(t, s)
	var conflicts atomic.Int64
	cfg := quietWriterConfig()
	cfg.Limits = &limits
	cfg.OnRetry = func(string) { conflicts.Add(1) }
	wA := runWriter(t, logA, cfg)
	mustCreateRealm(t, wA, realm)
	setup := []iam.Request{userReq(realm, "u"), {Realm: realm, Command: iam.CreateApp{ID: "bot", Name: "Bot"}}}
	if _, errs := execAll(wA, setup, 1); firstErr(errs) != nil {
		t.Fatalf("setup: %v", firstErr(errs))
	}
	// u creates apps as itself: ResourceManager lets it.
	mustExec(t, wA, iam.Request{Realm: realm, Command: iam.GrantRole{Identity: "u", Role: iam.RoleResourceManager}})
	setup = nil
	for i := range others {
		// The bot stays their manager, so that u can be taken off again.
		setup = append(setup, iam.Request{Realm: realm, Command: iam.CreateApp{ID: fmt.Sprintf("o%02d", i), Name: "O", Owner: "bot"}})
	}
	if _, errs := execAll(wA, setup, 8); firstErr(errs) != nil {
		t.Fatalf("setup: %v", firstErr(errs))
	}
	wB := runWriter(t, logB, cfg)
	writers := []*writer.Writer{wA, wB}

	refused := raceWriters(t, writers, 7, goroutines, budget, func(i, n int, rng *rand.Rand) iam.Request {
		other := iam.ManagedRef{Kind: iam.ManagedApp, ID: fmt.Sprintf("o%02d", rng.IntN(others))}
		var cmd iam.Command
		switch k := rng.IntN(10); {
		case k < 4:
			cmd = iam.CreateApp{ID: fmt.Sprintf("n-%d-%d", i, n), Name: "N"}
		case k < 8:
			cmd = iam.AddManager{Entity: other, Manager: "u"}
		default: // frees a slot to race for
			cmd = iam.RemoveManager{Entity: other, Manager: "u"}
		}
		return iam.Request{Realm: realm, Actor: "u", Command: cmd}
	})
	// Replay the log, counting u's apps after every entry.
	st := iam.NewState()
	managed, most := 0, 0
	for _, e := range logEntries(t, logA) {
		if err := st.ApplyEntry(e, nil); err != nil {
			t.Fatalf("apply entry %d: %v", e.Seq, err)
		}
		for _, c := range e.Commits {
			for _, ev := range c.Events {
				switch ev := ev.(type) {
				case iam.ManagerAdded:
					if ev.Manager == "u" && ev.Kind == iam.ManagedApp {
						managed++
					}
				case iam.ManagerRemoved:
					if ev.Manager == "u" && ev.Kind == iam.ManagedApp {
						managed--
					}
				}
			}
		}
		if managed > limits.AppsPerManager {
			t.Fatalf("after entry %d u manages %d apps, want at most %d", e.Seq, managed, limits.AppsPerManager)
		}
		most = max(most, managed)
	}
	if most != limits.AppsPerManager || refused == 0 {
		t.Errorf("u managed at most %d apps with %d refusals; want the limit %d reached and refusals (not contended)",
			most, refused, limits.AppsPerManager)
	}
	if conflicts.Load() == 0 {
		t.Error("no conflict between the two writers, want some (the writers did not race)")
	}
}
