package iam_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

func FuzzParseHRN(f *testing.F) {
	for _, s := range []string{
		"hrn:here:data::r1:cat-1", "hrn:here:authorization::r1:project/p-1:policy/x", "hrn:here:data:eu:r1:a:b",
		"hrn:", "hrn:::::", "hrn:here:data::r1:", "hrn:here:data::r1:x*", "hrn:here:data::r1:a b", "arn:aws:s3:::b",
		"hrn:here:data::r1:\xff", "hrn:here:data::r1:\u2028", "", "hrn:a:b:c:d:e:f:g",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := iam.ParseHRN("f", s)
		if err != nil {
			if iam.ErrorCode(err) != iam.EInvalid || iam.ErrorField(err) != "f" {
				t.Fatalf("ParseHRN(%q): got %v, want invalid_argument naming f", s, err)
			}
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("String: got %q, want %q", got, s)
		}
		if h.Partition == "" || h.Service == "" || h.Resource == "" || len(s) > iam.MaxHRNLength || strings.Contains(s, "*") {
			t.Fatalf("ParseHRN(%q): got %+v, want a complete HRN", s, h)
		}
		if err := iam.ValidatePattern("f", s); err != nil {
			t.Fatalf("ValidatePattern(%q) of an HRN: got %v, want nil", s, err)
		}
		if !iam.MatchResource(s, s) {
			t.Fatalf("MatchResource(%q, itself): got false, want true", s)
		}
		if again, err := iam.ParseHRN("f", h.String()); err != nil || again != h {
			t.Fatalf("reparse: got %+v, %v, want %+v", again, err, h)
		}
	})
}

func FuzzValidatePattern(f *testing.F) {
	// Decide does not change the state, so one realm serves every input.
	policyState := iam.NewState()
	evs, err := iam.Decide(policyState, iam.Request{Command: iam.CreateRealm{ID: "r1", Name: "R"}})
	if err != nil {
		f.Fatal(err)
	}
	if err := policyState.ApplyEntry(iam.LogEntry{Seq: 1, Commits: []iam.Commit{{Events: evs}}}, nil); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"hrn:here:data::r1:cat-*", "hrn:here:*", "hrn:*", "hrn::*", "*", "hrn:here:data::r1:**", "hrn:here:data::r1:*x",
		"hrn:here:data::r1:x", "hrn:here:d ata::r1:*", "hrn:here:\x00:*", "hrn:here:data::r1:" + strings.Repeat("x", 1010) + "*",
	} {
		f.Add(s, "hrn:here:data::r1:cat-1")
	}
	f.Fuzz(func(t *testing.T, p, hrn string) {
		err := iam.ValidatePattern("f", p)
		matched := iam.MatchResource(p, hrn) // must not panic, valid or not
		if err != nil {
			if iam.ErrorCode(err) != iam.EInvalid || iam.ErrorField(err) != "f" {
				t.Fatalf("ValidatePattern(%q): got %v, want invalid_argument naming f", p, err)
			}
			return
		}
		if len(p) > iam.MaxHRNLength || !strings.HasPrefix(p, "hrn:") {
			t.Fatalf("ValidatePattern(%q): got nil, want an error", p)
		}
		prefix, wild := strings.CutSuffix(p, "*")
		if strings.Contains(prefix, "*") {
			t.Fatalf("ValidatePattern(%q): got nil for an inner *, want an error", p)
		}
		if !wild {
			if _, err := iam.ParseHRN("f", p); err != nil {
				t.Fatalf("exact pattern %q: got %v from ParseHRN, want an HRN", p, err)
			}
		}
		if want := strings.HasPrefix(hrn, prefix) && (wild || hrn == p); matched != want {
			t.Fatalf("MatchResource(%q, %q): got %v, want %v", p, hrn, matched, want)
		}
		// A valid pattern is accepted in a policy.
		cmd := iam.CreatePolicy{ID: "p", Name: "P", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{p}}}}
		if _, err := iam.Decide(policyState, iam.Request{Realm: "r1", Command: cmd}); err != nil {
			t.Fatalf("CreatePolicy with pattern %q: got %v, want success", p, err)
		}
	})
}

func FuzzUnmarshalCommits(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range sampleEvents() {
		b, err := iam.MarshalCommits([]iam.Commit{{Actor: "u", IdempotencyKey: "k", RequestHash: "h", At: at, Events: []iam.Event{e}}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	all, err := iam.MarshalCommits([]iam.Commit{{Events: sampleEvents()}, {At: at}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(all)
	for _, s := range []string{
		`[]`, `null`, `[null]`, `[{}]`, `[{"events":null}]`, `[{"events":[null]}]`, `[{"events":[{}]}]`,
		`[{"events":[{"type":"Heartbeat","v":1,"data":null}]}]`, `[{"events":[{"type":"Heartbeat","v":2,"data":{}}]}]`,
		`[{"events":[{"type":"PolicyCreated","v":1,"data":{"statements":[{"actions":null}]}}]}]`,
		`[{"at":"2026-01-01T00:00:00+24:00"}]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		commits, err := iam.UnmarshalCommits(b)
		if err != nil {
			return
		}
		for _, c := range commits {
			for _, e := range c.Events {
				if e == nil {
					t.Fatalf("UnmarshalCommits(%q): got a nil event", b)
				}
				if reflect.TypeOf(e).Kind() == reflect.Pointer {
					t.Fatalf("UnmarshalCommits(%q): got %T, want a value event", b, e)
				}
			}
		}
		again, err := iam.MarshalCommits(commits)
		if err != nil {
			return // e.g. a time the decoder accepts but JSON cannot carry back
		}
		back, err := iam.UnmarshalCommits(again)
		if err != nil {
			t.Fatalf("re-decode of %q: %v", again, err)
		}
		if !reflect.DeepEqual(back, commits) {
			t.Fatalf("re-decode:\ngot  %#v\nwant %#v", back, commits)
		}
	})
}
