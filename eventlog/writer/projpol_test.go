package writer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/writer"
)

// raceWriters runs goroutines × budget requests, made by next (each
// goroutine with its own generator seeded by seed), through two writer
// processes on the same stream, and returns how many were refused
// with limit_exceeded. Any error but limit_exceeded, conflict (a writer
// that gave up re-deciding, or a creation of what exists) and not_found (a
// deletion of what another racer deleted first) fails the test.
func raceWriters(t *testing.T, writers []*writer.Writer, seed uint64, goroutines, budget int, next func(worker, n int, rng *rand.Rand) iam.Request) int64 {
	t.Helper()
	var (
		limitErrs atomic.Int64
		mu        sync.Mutex
		otherErrs []error
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	startLine := make(chan struct{})
	for i := range goroutines {
		w := writers[i%2]
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() {
			<-startLine
			for n := range budget {
				_, err := w.Execute(ctx, next(i, n, rng))
				switch code := iam.ErrorCode(err); {
				case err == nil, code == iam.EConflict, code == iam.ENotFound:
				case code == iam.ELimitExceeded:
					limitErrs.Add(1)
				default:
					mu.Lock()
					otherErrs = append(otherErrs, err)
					mu.Unlock()
				}
				if ctx.Err() != nil {
					return
				}
			}
		})
	}
	close(startLine)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the workload did not finish in time: %v", ctx.Err())
	}
	for _, err := range otherErrs[:min(len(otherErrs), 5)] {
		t.Errorf("unexpected error: %v", err)
	}
	return limitErrs.Load()
}

// projPolWorld starts two writers on one stream with limits, a realm "pp"
// holding user u and project proj (with resource res), and setup done by
// the first writer before the second starts.
func projPolWorld(t *testing.T, limits iam.Limits, setup []iam.Command) ([]*writer.Writer, *atomic.Int64, func() []iam.LogEntry) {
	t.Helper()
	s := eventlogtest.MustRunJetStream(t)
	logA, logB := openLogOn(t, s), openLogOn(t, s)
	conflicts := new(atomic.Int64)
	cfg := quietWriterConfig()
	cfg.Limits = &limits
	cfg.OnRetry = func(string) { conflicts.Add(1) }
	wA := runWriter(t, logA, cfg)
	mustCreateRealm(t, wA, "pp")
	base := []iam.Command{
		iam.CreateProject{ID: "proj", Name: "P"},
		iam.AddProjectResource{Project: "proj", HRN: "hrn:here:data::pp:res", Relation: iam.RelationHome},
	}
	mustExec(t, wA, userReq("pp", "u"))
	for _, cmd := range append(base, setup...) {
		mustExec(t, wA, iam.Request{Realm: "pp", Command: cmd})
	}
	wB := runWriter(t, logB, cfg)
	return []*writer.Writer{wA, wB}, conflicts, func() []iam.LogEntry { return logEntries(t, logA) }
}

func readPolicy(actions ...string) []iam.Statement {
	return []iam.Statement{{Effect: iam.Allow, Actions: actions, Resources: []string{"hrn:here:data::pp:res"}}}
}

// TestWriter_ProjectPoliciesUnderConcurrency: two writer processes race to
// create policies in one project while others delete some; replaying the
// log, the project never holds more than PoliciesPerProject after any entry.
func TestWriter_ProjectPoliciesUnderConcurrency(t *testing.T) {
	limits := iam.DefaultLimits()
	writers, conflicts, entries := projPolWorld(t, limits, nil)
	refused := raceWriters(t, writers, 11, 12, 30, inPP(func(rng *rand.Rand) iam.Command {
		// More ids than the limit, few enough that racers meet; a delete
		// frees a slot to race for.
		id := fmt.Sprintf("x%d", rng.IntN(8))
		if rng.IntN(4) == 0 {
			return iam.DeleteProjectPolicy{Project: "proj", ID: id}
		}
		return iam.CreateProjectPolicy{Project: "proj", ID: id, Name: "X", Statements: readPolicy("read")}
	}))
	st, most := iam.NewState(), 0
	for _, e := range entries() {
		if err := st.ApplyEntry(e, nil); err != nil {
			t.Fatalf("apply entry %d: %v", e.Seq, err)
		}
		if r := st.Realm("pp"); r != nil && r.Projects["proj"] != nil {
			n := len(r.Projects["proj"].Policies)
			if n > limits.PoliciesPerProject {
				t.Fatalf("after entry %d the project has %d policies, want at most %d", e.Seq, n, limits.PoliciesPerProject)
			}
			most = max(most, n)
		}
	}
	if most != limits.PoliciesPerProject || refused == 0 || conflicts.Load() == 0 {
		t.Errorf("at most %d project policies, %d refusals, %d conflicts; want the limit %d reached, refusals and conflicts (not contended)",
			most, refused, conflicts.Load(), limits.PoliciesPerProject)
	}
}

// TestWriter_PermissionsPerIdentityUnderConcurrency: two writer processes
// race to give u more permissions (realm policies, plans, project policies
// through its membership) while others take some away; replaying the log,
// u never holds more than PermissionsPerIdentity after any entry. What u
// holds is counted as GET …/permissions lists it (u has no group, role or
// managed entity, so that is exactly what is assigned to it).
func TestWriter_PermissionsPerIdentityUnderConcurrency(t *testing.T) {
	limits := iam.DefaultLimits()
	limits.PermissionsPerIdentity = 20 // reached within the budget
	var setup []iam.Command
	for k := range 8 { // 3 permissions each
		setup = append(setup, iam.CreatePolicy{ID: fmt.Sprintf("p%d", k), Name: "P", Statements: readPolicy("read", "write", "share")})
	}
	for k := range 3 { // 6 permissions each
		setup = append(setup, iam.CreatePlan{ID: fmt.Sprintf("plan%d", k), Name: "Plan", Policies: []string{fmt.Sprintf("p%d", 2*k), fmt.Sprintf("p%d", 2*k+1)}})
	}
	for k := range 3 { // 2 permissions each
		setup = append(setup, iam.CreateProjectPolicy{Project: "proj", ID: fmt.Sprintf("pp%d", k), Name: "PP", Statements: readPolicy("read", "write")})
	}
	writers, conflicts, entries := projPolWorld(t, limits, setup)
	refused := raceWriters(t, writers, 11, 12, 30, inPP(func(rng *rand.Rand) iam.Command {
		policy, plan := fmt.Sprintf("p%d", rng.IntN(8)), fmt.Sprintf("plan%d", rng.IntN(3))
		switch k := rng.IntN(10); {
		case k < 4:
			return iam.AttachPolicy{Policy: policy, Target: "u"}
		case k < 6:
			return iam.AttachPlan{Plan: plan, Target: "u"}
		case k < 8:
			var pols []string
			for p := range 1 + rng.IntN(3) {
				pols = append(pols, iam.ProjectPolicyHRN("pp", "proj", fmt.Sprintf("pp%d", p)))
			}
			return iam.SetProjectMember{Project: "proj", Member: "u", Policies: pols}
		case k < 9: // frees room to race for
			return iam.DetachPolicy{Policy: policy, Target: "u"}
		default:
			return iam.DetachPlan{Plan: plan, Target: "u"}
		}
	}))
	st, most := iam.NewState(), 0
	for _, e := range entries() {
		if err := st.ApplyEntry(e, nil); err != nil {
			t.Fatalf("apply entry %d: %v", e.Seq, err)
		}
		perms, err := st.Permissions("pp", "u")
		if err != nil {
			continue // before u exists
		}
		if len(perms) > limits.PermissionsPerIdentity {
			t.Fatalf("after entry %d u holds %d permissions, want at most %d", e.Seq, len(perms), limits.PermissionsPerIdentity)
		}
		most = max(most, len(perms))
	}
	// Steps are 2, 3 and 6 permissions: the limit itself may fall between.
	if most < limits.PermissionsPerIdentity-2 || refused == 0 || conflicts.Load() == 0 {
		t.Errorf("u held at most %d permissions, %d refusals, %d conflicts; want near the limit %d, refusals and conflicts (not contended)",
			most, refused, conflicts.Load(), limits.PermissionsPerIdentity)
	}
}

// inPP makes raceWriters' requests of commands in realm "pp", as anyone.
func inPP(next func(*rand.Rand) iam.Command) func(int, int, *rand.Rand) iam.Request {
	return func(_, _ int, rng *rand.Rand) iam.Request { return iam.Request{Realm: "pp", Command: next(rng)} }
}
