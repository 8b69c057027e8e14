package sim

// Internal tests: the model and the judge work on unexported records.

import (
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/client"
)

func ev(typ string, d eventData) logEvent { return logEvent{Type: typ, eventData: d} }

// testLog: app a is created (1), policy p allows read on r0 (2), group g
// holds p (3); a is attached p directly (4), detached (5), joins g (6),
// is deactivated (7), reactivated (8), leaves g (9).
func testLog(t0 time.Time) []logEntry {
	pol := eventData{ID: "p"}
	pol.Statements = append(pol.Statements, struct {
		Effect    string   `json:"effect"`
		Actions   []string `json:"actions"`
		Resources []string `json:"resources"`
	}{"allow", []string{"read"}, []string{"r0"}})
	es := []logEntry{
		{Seq: 1, Events: []logEvent{ev("IdentityCreated", eventData{ID: "a"})}},
		{Seq: 2, Events: []logEvent{ev("PolicyCreated", pol)}},
		{Seq: 3, Events: []logEvent{ev("GroupCreated", eventData{ID: "g"}), ev("PolicyAttached", eventData{Policy: "p", Target: "g"})}},
		{Seq: 4, Events: []logEvent{ev("PolicyAttached", eventData{Policy: "p", Target: "a"})}},
		{Seq: 5, Events: []logEvent{ev("PolicyDetached", eventData{Policy: "p", Target: "a"})}},
		{Seq: 6, Events: []logEvent{ev("MemberAdded", eventData{Group: "g", Identity: "a"})}},
		{Seq: 7, Events: []logEvent{ev("IdentityStatusChanged", eventData{ID: "a", Status: "deactivated"})}},
		{Seq: 8, Events: []logEvent{ev("IdentityStatusChanged", eventData{ID: "a", Status: "active"})}},
		{Seq: 9, Events: []logEvent{ev("MemberRemoved", eventData{Group: "g", Identity: "a"})}},
	}
	for i := range es {
		es[i].Time = t0.Add(time.Duration(es[i].Seq) * time.Second)
	}
	return es
}

func TestModel_At(t *testing.T) {
	t0 := time.Now()
	m := buildModel(testLog(t0), []string{"a"}, []string{"r0", "r1"})
	want := []bool{false, false, false, false, true, false, true, false, true, false}
	for seq, w := range want {
		if got := m.at("a", 0, uint64(seq)); got != w {
			t.Errorf("at(%d): got %t, want %t", seq, got, w)
		}
		if m.at("a", 1, uint64(seq)) {
			t.Errorf("at(%d) on r1: got allowed, want denied (no policy)", seq)
		}
	}
	if !m.within("a", 0, 4, 6, false) || m.within("a", 0, 6, 6, false) || !m.within("a", 0, 5, 9, true) {
		t.Error("within: wrong over ranges")
	}
	if got := m.headAt(t0.Add(6500 * time.Millisecond)); got != 6 {
		t.Errorf("headAt: got %d, want 6", got)
	}
	if !m.inactiveWithin("a", 6, 7) || m.inactiveWithin("a", 8, 9) || !m.inactiveWithin("a", 0, 0) {
		t.Error("inactiveWithin: wrong over ranges")
	}
	if m.deactivatedBy("a", 5) || !m.deactivatedBy("a", 7) || !m.deactivatedBy("a", 9) {
		t.Error("deactivatedBy: a token from before the deactivation must stay refused after the reactivation")
	}
}

func TestModel_Judge(t *testing.T) {
	t0 := time.Now()
	m := buildModel(testLog(t0), []string{"a"}, []string{"r0"})
	at := func(seq int) time.Time { return t0.Add(time.Duration(seq)*time.Second + 500*time.Millisecond) }
	tests := []struct {
		name string
		a    answerRec
		want verdict
	}{
		{"fresh allow", answerRec{Mode: iam.AtLeastAsFresh, App: "a", ReqSeq: 4, Seq: 4, Allowed: true, Status: 200, Recv: at(4)}, verdict{}},
		{"allow claimed at 4 but revoked at 5, asked for 5", answerRec{Mode: iam.AtLeastAsFresh, App: "a", ReqSeq: 5, Seq: 4, Allowed: true, Status: 200, Recv: at(5)}, verdict{Stale: true}},
		{"deny at a token before the state it saw", answerRec{Mode: iam.AtLeastAsFresh, App: "a", ReqSeq: 4, Seq: 4, Allowed: false, Status: 200, Recv: at(5)}, verdict{}},
		{"allow that never was", answerRec{Mode: iam.MinimizeLatency, App: "a", Seq: 2, Allowed: true, Status: 200, Recv: at(3), AckedAtSend: 3}, verdict{Wrong: true, Behind: true}},
		{"old but consistent", answerRec{Mode: iam.MinimizeLatency, App: "a", Seq: 4, Allowed: true, Status: 200, Recv: at(5), AckedAtSend: 5}, verdict{Behind: true}},
		{"fully consistent behind an ack", answerRec{Mode: iam.FullyConsistent, App: "a", Seq: 6, Allowed: true, Status: 200, Recv: at(7), AckedAtSend: 7}, verdict{Stale: true}},
		{"refused while deactivated", answerRec{Mode: iam.AtLeastAsFresh, App: "a", ReqSeq: 7, Status: 401, Recv: at(7)}, verdict{}},
		// A deactivation revoked the token the app had: refused for good.
		{"refused after reactivation", answerRec{Mode: iam.AtLeastAsFresh, App: "a", ReqSeq: 8, Status: 401, Recv: at(8)}, verdict{}},
		{"refused before any deactivation", answerRec{Mode: iam.AtLeastAsFresh, App: "a", ReqSeq: 5, Status: 401, Recv: at(5)}, verdict{Wrong: true, StaleRefusal: true}},
		{"refused, never deactivated", answerRec{Mode: iam.MinimizeLatency, App: "a", Status: 401, Recv: at(5), AckedAtSend: 5}, verdict{Wrong: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.judge(tt.a, 1); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckEvents(t *testing.T) {
	t0 := time.Now()
	log := testLog(t0)
	w := func(key string, seq uint64, acked bool) *writeRec {
		r := &writeRec{Key: key, Seq: seq, Sent: t0}
		if acked {
			r.Acked = t0.Add(time.Second)
		}
		return r
	}
	apps := map[string]bool{"a": true}
	all := []*writeRec{
		w("PolicyAttached|p|a", 4, true), w("PolicyDetached|p|a", 5, true), w("MemberAdded|g|a", 6, true),
		w("IdentityStatusChanged|deactivated|a", 7, true), w("IdentityStatusChanged|active|a", 8, true), w("MemberRemoved|g|a", 9, true),
	}
	if ec := checkEvents(log, all, apps, 3); ec.Lost != 0 || ec.Duplicated != 0 {
		t.Fatalf("all acknowledged: got %+v, want nothing lost or duplicated", ec)
	}
	// The write at 9 failed on the client but landed; the one at 6 is
	// acknowledged at the wrong place; the log has no write for 5.
	some := []*writeRec{all[0], w("MemberAdded|g|a", 7, true), all[3], all[4], w("MemberRemoved|g|a", 0, false)}
	ec := checkEvents(log, some, apps, 3)
	if ec.Lost != 1 || ec.LandedUnacked != 1 || ec.Duplicated != 2 || ec.Failed != 1 {
		t.Errorf("got %+v, want 1 lost, 1 landed unacknowledged, 2 belonging to no write (5 and 6)", ec)
	}
}

func TestRecorder_RetryIsCountedAndKept(t *testing.T) {
	m := NewMetrics([]string{"eu-west"})
	rec := newRecorder(m)
	rec.start = time.Now()
	for i := range 3 {
		rec.retry("eu-west", "check", client.RetryEvent{Cause: client.CauseReplicaBehind, Delay: time.Duration(i+1) * time.Millisecond, Failover: i == 2})
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var retries, failovers float64
	for _, mf := range mfs {
		if mf.GetName() != "iamsim_client_retries_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "retry" {
					retries += s.GetCounter().GetValue()
				} else if l.GetName() == "kind" && l.GetValue() == "failover" {
					failovers += s.GetCounter().GetValue()
				}
			}
		}
	}
	if retries != 2 || failovers != 1 || len(rec.retries) != 3 {
		t.Errorf("got %v retries, %v failovers counted and %d kept, want 2, 1 and 3", retries, failovers, len(rec.retries))
	}
}

func TestNewDist(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := newDist(ds)
	if d.N != 100 || d.P50.D() != 50*time.Millisecond || d.P99.D() != 99*time.Millisecond || d.Max.D() != 100*time.Millisecond {
		t.Errorf("got %+v, want p50 50ms, p99 99ms, max 100ms", d)
	}
	if last := d.CDF[len(d.CDF)-1]; last.Fraction != 1 {
		t.Errorf("CDF ends at %v, want 1", last.Fraction)
	}
}

// TestEndLoad_WaitsForTheMinimums: the load stops at the scenario's
// duration unless an extension is allowed and the minimums are not met;
// then it stops once they are, and no later than the extension's end.
func TestEndLoad_WaitsForTheMinimums(t *testing.T) {
	const duration, extend = 20 * time.Millisecond, 80 * time.Millisecond
	s := Scenario{Duration: Duration(duration), SLO: SLO{MinWrites: 2}}
	ack := func(rec *recorder) {
		w := rec.newWrite(&writeRec{Kind: "MemberAdded"})
		rec.acked(w, 1, time.Now(), "eu-west", false)
	}
	// Timers never fire early, so these lower bounds hold on any machine;
	// endLoad returning at all (rather than hanging the test) is the rest.
	took := func(extend time.Duration) time.Duration {
		start := time.Now()
		endLoad(t.Context(), newRecorder(NewMetrics([]string{"eu-west"})), s, extend)
		return time.Since(start)
	}
	if got := took(0); got < duration {
		t.Errorf("no extension: the load ended after %s, before the scenario's %s", got, duration)
	}
	if got := took(extend); got < duration+extend {
		t.Errorf("minimums never met: the load ended after %s, before its %s and the %s extension", got, duration, extend)
	}
	rec := newRecorder(NewMetrics([]string{"eu-west"}))
	ack(rec)
	done := make(chan struct{})
	go func() {
		defer close(done)
		endLoad(t.Context(), rec, s, time.Minute)
	}()
	select {
	case <-done:
		t.Fatal("the load ended with 1 of 2 writes and a minute of extension left")
	case <-time.After(300 * time.Millisecond):
	}
	ack(rec)
	<-done
}

// TestFaultsLasted: a fault that lasts until the load ends (latency with
// no For) ends when the extended load did; one that was healed at the
// scenario's duration keeps its end.
func TestFaultsLasted(t *testing.T) {
	rec := newRecorder(NewMetrics([]string{"eu-west"}))
	d := Duration(8 * time.Second)
	rec.fault(FaultWindow{Kind: FaultLatency, Start: Duration(2 * time.Second), End: d, toLoadEnd: true})
	rec.fault(FaultWindow{Kind: FaultPartition, Start: Duration(5 * time.Second), End: d})
	rec.faultsLasted(Duration(12 * time.Second))
	if got := rec.faults[0].End; got != Duration(12*time.Second) {
		t.Errorf("latency to the load's end: ends at %s, want 12s", got.D())
	}
	if got := rec.faults[1].End; got != d {
		t.Errorf("partition healed at 8s: ends at %s, want 8s", got.D())
	}
}
