package iam_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// sampleEvents holds one event of every type, each field set.
func sampleEvents() []iam.Event {
	in := iam.InRealm{Realm: "r1"}
	return []iam.Event{
		iam.Heartbeat{At: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		iam.RealmCreated{InRealm: in, Name: "Realm One"},
		iam.IdentityCreated{InRealm: in, ID: "u", Kind: iam.KindUser, Email: "u@example.com", Name: "Ü \"quoted\"", PasswordHash: argon},
		iam.IdentityCreated{InRealm: in, ID: "a", Kind: iam.KindApp, Name: "App", RedirectURIs: []string{"https://x/cb", "http://127.0.0.1/cb"}, Owner: "u"},
		iam.IdentityStatusChanged{InRealm: in, ID: "u", Status: iam.StatusDeactivated},
		// Sealed as if in the clear, so that TestRedact sees it go.
		iam.PersonalDataChanged{InRealm: in, User: "u", EmailIndex: "bi1.index", Sealed: []byte("u@example.com")},
		iam.IdentityDeleted{InRealm: in, ID: "u"},
		iam.CredentialAdded{InRealm: in, App: "a", CredentialID: "c", ClientID: "client", SecretHash: argon},
		iam.CredentialRemoved{InRealm: in, App: "a", CredentialID: "c"},
		iam.APIKeyAdded{InRealm: in, App: "a", KeyID: "k", KeyHash: argon},
		iam.APIKeyRemoved{InRealm: in, App: "a", KeyID: "k"},
		iam.DefaultProjectSet{InRealm: in, App: "a", Project: "proj"},
		iam.DefaultProjectSet{InRealm: in, App: "a"},
		iam.GroupCreated{InRealm: in, ID: "g", Name: "G"},
		iam.MemberAdded{InRealm: in, Group: "g", Identity: "u"},
		iam.MemberRemoved{InRealm: in, Group: "g", Identity: "u"},
		iam.RoleGranted{InRealm: in, Identity: "u", Role: iam.RoleOrgAdmin},
		iam.RoleRevoked{InRealm: in, Identity: "u", Role: iam.RoleOrgAdmin},
		iam.PolicyCreated{InRealm: in, ID: "p", Name: "P", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"read", "*"}, Resources: []string{data("a"), data("b-*")}},
			{Effect: iam.Deny, Actions: []string{"write"}, Resources: []string{"hrn:here:*"}},
		}},
		iam.PolicyAttached{InRealm: in, Policy: "p", Target: "g"},
		iam.PolicyDetached{InRealm: in, Policy: "p", Target: "g"},
		iam.ProjectCreated{InRealm: in, ID: "proj", Name: "Project"},
		iam.ProjectMemberSet{InRealm: in, Project: "proj", Member: "g", Policies: []string{"p", "q"}},
		iam.ProjectMemberSet{InRealm: in, Project: "proj", Member: "u", Policies: []string{}},
		iam.ProjectMemberRemoved{InRealm: in, Project: "proj", Member: "g"},
		iam.ProjectResourceAdded{InRealm: in, Project: "proj", HRN: data("a"), Relation: iam.RelationLink},
		iam.ProjectResourceRemoved{InRealm: in, Project: "proj", HRN: data("a")},
		iam.ResourceLinkableSet{InRealm: in, Project: "proj", HRN: data("a"), Linkable: false},
		iam.AppShared{InRealm: in, App: "a", With: "g"},
		iam.AppUnshared{InRealm: in, App: "a", With: "g"},
	}
}

func TestMarshalCommits_RoundTrip(t *testing.T) {
	evs := sampleEvents()
	types := map[string]bool{}
	for _, e := range evs {
		types[e.EventType()] = true
	}
	if got, want := len(types), 27; got != want {
		t.Fatalf("event types sampled: got %d, want %d", got, want)
	}
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	commits := []iam.Commit{
		{Actor: "u", IdempotencyKey: "key-1", RequestHash: "abc", At: at, Events: evs[:10]},
		{At: at.Add(time.Second), Events: evs[10:]},
		{At: at, Events: []iam.Event{}},
	}
	b, err := iam.MarshalCommits(commits)
	if err != nil {
		t.Fatalf("MarshalCommits: %v", err)
	}
	got, err := iam.UnmarshalCommits(b)
	if err != nil {
		t.Fatalf("UnmarshalCommits: %v", err)
	}
	if !reflect.DeepEqual(got, commits) {
		t.Fatalf("round trip:\ngot  %#v\nwant %#v", got, commits)
	}
	for _, e := range evs {
		one, err := iam.MarshalCommits([]iam.Commit{{At: at, Events: []iam.Event{e}}})
		if err != nil {
			t.Fatalf("MarshalCommits(%s): %v", e.EventType(), err)
		}
		back, err := iam.UnmarshalCommits(one)
		if err != nil {
			t.Fatalf("UnmarshalCommits(%s): %v", e.EventType(), err)
		}
		if !reflect.DeepEqual(back[0].Events[0], e) {
			t.Fatalf("%s: got %#v, want %#v", e.EventType(), back[0].Events[0], e)
		}
		if !strings.Contains(string(one), `"type":"`+e.EventType()+`","v":1`) {
			t.Fatalf("%s envelope: got %s, want type and v=1", e.EventType(), one)
		}
	}
}

// TestMarshalCommits_NoSecretsInClear: only hashes reach the log.
func TestMarshalCommits_NoSecretsInClear(t *testing.T) {
	b, err := iam.MarshalCommits([]iam.Commit{{Events: sampleEvents()}})
	if err != nil {
		t.Fatalf("MarshalCommits: %v", err)
	}
	for _, field := range []string{`"password"`, `"secret"`, `"key"`} {
		if strings.Contains(string(b), field) {
			t.Fatalf("log body: got a %s field, want only hashes", field)
		}
	}
}

func TestUnmarshalCommits_Refuses(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown type", `[{"at":"2026-01-01T00:00:00Z","events":[{"type":"RealmRenamed","v":1,"data":{}}]}]`, "unknown event type"},
		{"newer version", `[{"at":"2026-01-01T00:00:00Z","events":[{"type":"RealmCreated","v":2,"data":{"realm":"r1","name":"x"}}]}]`, "version 2 not supported"},
		{"version zero", `[{"at":"2026-01-01T00:00:00Z","events":[{"type":"RealmCreated","v":0,"data":{"realm":"r1"}}]}]`, "version 0 not supported"},
		{"no version", `[{"at":"2026-01-01T00:00:00Z","events":[{"type":"RealmCreated","data":{"realm":"r1"}}]}]`, "not supported"},
		{"unknown type after a good one", `[{"events":[{"type":"Heartbeat","v":1,"data":{}}]},{"events":[{"type":"x","v":1,"data":{}}]}]`, "unknown event type"},
		{"bad data", `[{"events":[{"type":"RealmCreated","v":1,"data":{"realm":5}}]}]`, "decode RealmCreated"},
		{"missing data", `[{"events":[{"type":"RealmCreated","v":1}]}]`, "decode RealmCreated"},
		{"not JSON", `{`, "decode commits"},
		{"not a list", `{"events":[]}`, "decode commits"},
		{"bad time", `[{"at":"yesterday","events":[]}]`, "decode commits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := iam.UnmarshalCommits([]byte(tt.body))
			if err == nil {
				t.Fatalf("got %#v, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestState_Idempotency: a writer remembers a key's first answer, forgets it
// after the retention, and keeps at most the configured number.
func TestState_Idempotency(t *testing.T) {
	s := iam.NewState()
	s.TrackIdempotency = true
	s.Limits.MaxIdempotencyKeysPerRealm = 3
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seq := uint64(0)
	commit := func(key string, at time.Time, cmd iam.Command) {
		t.Helper()
		evs, err := iam.Decide(s, iam.Request{Realm: realm, At: at, Command: cmd})
		if err != nil {
			t.Fatalf("decide: %v", err)
		}
		seq++
		if err := s.ApplyEntry(iam.LogEntry{Seq: seq, Commits: []iam.Commit{{IdempotencyKey: key, RequestHash: "h-" + key, At: at, Events: evs}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	commit("", t0, iam.CreateRealm{ID: realm, Name: "R"})
	commit("k1", t0, iam.CreateGroup{ID: "g1", Name: "G"})
	if rec, ok := s.Idempotency(realm, "k1"); !ok || rec.Seq != 2 || rec.RequestHash != "h-k1" || !rec.At.Equal(t0) {
		t.Fatalf("Idempotency(k1): got %+v %v, want seq 2 hash h-k1", rec, ok)
	}
	if got := s.Realm(realm).LastSeq; got != 2 {
		t.Fatalf("LastSeq: got %d, want 2", got)
	}
	commit("k1", t0.Add(time.Minute), iam.CreateGroup{ID: "g2", Name: "G"}) // a repeat keeps the first answer
	if rec, _ := s.Idempotency(realm, "k1"); rec.Seq != 2 {
		t.Fatalf("Idempotency(k1) after repeat: got seq %d, want 2", rec.Seq)
	}
	commit("k2", t0.Add(time.Hour), iam.CreateGroup{ID: "g3", Name: "G"})
	commit("k3", t0.Add(2*time.Hour), iam.CreateGroup{ID: "g4", Name: "G"})
	commit("k4", t0.Add(3*time.Hour), iam.CreateGroup{ID: "g5", Name: "G"}) // over the count: k1 goes
	if _, ok := s.Idempotency(realm, "k1"); ok {
		t.Fatalf("Idempotency(k1) over the count: got a record, want none")
	}
	commit("k5", t0.Add(26*time.Hour), iam.CreateGroup{ID: "g6", Name: "G"}) // k2, k3 past 24h
	for key, want := range map[string]bool{"k2": false, "k3": false, "k4": true, "k5": true} {
		if _, ok := s.Idempotency(realm, key); ok != want {
			t.Errorf("Idempotency(%s): got %v, want %v", key, ok, want)
		}
	}
	if _, ok := s.Idempotency("nope", "k5"); ok {
		t.Fatalf("Idempotency in unknown realm: got a record, want none")
	}
}

// TestRedact: the change feed's events carry no hashes and no personal data,
// and every other field is kept.
func TestRedact(t *testing.T) {
	for _, e := range sampleEvents() {
		got := iam.Redact(e)
		want := e
		switch e := e.(type) {
		case iam.IdentityCreated:
			e.Email, e.Name, e.PasswordHash = "", "", ""
			want = e
		case iam.PersonalDataChanged:
			e.EmailIndex, e.Sealed = "", nil
			want = e
		case iam.CredentialAdded:
			e.SecretHash = ""
			want = e
		case iam.APIKeyAdded:
			e.KeyHash = ""
			want = e
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Redact(%s): got %#v, want %#v", e.EventType(), got, want)
		}
		b, err := iam.MarshalCommits([]iam.Commit{{Events: []iam.Event{got}}})
		if err != nil {
			t.Fatalf("MarshalCommits: %v", err)
		}
		for _, secret := range []string{argon, "u@example.com", "Ü"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("Redact(%s): got %s, want no %q", e.EventType(), b, secret)
			}
		}
	}
}
