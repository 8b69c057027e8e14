package iam_test

import (
	"strings"
	"testing"

	"github.com/iam-project/iam"
)

func TestParseHRN(t *testing.T) {
	tests := []struct {
		in   string
		want iam.HRN
	}{
		{"hrn:here:data::r1:cat-1", iam.HRN{Partition: "here", Service: "data", Account: "r1", Resource: "cat-1"}},
		{"hrn:here:data:eu-west:r1:cat-1", iam.HRN{Partition: "here", Service: "data", Region: "eu-west", Account: "r1", Resource: "cat-1"}},
		{"hrn:here-cn:data:::x", iam.HRN{Partition: "here-cn", Service: "data", Resource: "x"}},
		{"hrn:here:authorization::r1:project/p-1:policy/x", iam.HRN{Partition: "here", Service: "authorization", Account: "r1", Resource: "project/p-1:policy/x"}},
		{"hrn:here:data::r1:a:b:c", iam.HRN{Partition: "here", Service: "data", Account: "r1", Resource: "a:b:c"}},
		{"hrn:here:data::r1:ünïcödé/é", iam.HRN{Partition: "here", Service: "data", Account: "r1", Resource: "ünïcödé/é"}},
		{"hrn:p:s:r:a:" + strings.Repeat("x", iam.MaxHRNLength-len("hrn:p:s:r:a:")), iam.HRN{Partition: "p", Service: "s", Region: "r", Account: "a", Resource: strings.Repeat("x", iam.MaxHRNLength-len("hrn:p:s:r:a:"))}},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			got, err := iam.ParseHRN("resource", tt.in)
			if err != nil {
				t.Fatalf("ParseHRN(%q): got error %v, want none", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseHRN(%q): got %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Fatalf("String: got %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParseHRN_Bad(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"no prefix", "here:data::r1:x"},
		{"wrong prefix", "arn:aws:s3:::bucket"},
		{"upper-case prefix", "HRN:here:data::r1:x"},
		{"too few parts", "hrn:here:data::r1"},
		{"only prefix", "hrn:"},
		{"empty partition", "hrn::data::r1:x"},
		{"empty service", "hrn:here:::r1:x"},
		{"empty resource", "hrn:here:data::r1:"},
		{"star", "hrn:here:data::r1:x*"},
		{"star in service", "hrn:here:*::r1:x"},
		{"space", "hrn:here:data::r1:a b"},
		{"tab", "hrn:here:data::r1:a\tb"},
		{"newline", "hrn:here:data::r1:x\n"},
		{"nul", "hrn:here:data::r1:x\x00"},
		{"DEL", "hrn:here:data::r1:x\x7f"},
		{"non-breaking space", "hrn:here:data::r1:a\u00a0b"},
		{"too long", "hrn:here:data::r1:" + strings.Repeat("x", iam.MaxHRNLength)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := iam.ParseHRN("statements[0].resources[1]", tt.in)
			if err == nil {
				t.Fatalf("ParseHRN(%q): got %+v, want an error", tt.in, h)
			}
			if got := iam.ErrorCode(err); got != iam.EInvalid {
				t.Fatalf("code: got %q, want %q", got, iam.EInvalid)
			}
			if got := iam.ErrorField(err); got != "statements[0].resources[1]" {
				t.Fatalf("field: got %q, want %q", got, "statements[0].resources[1]")
			}
			if h != (iam.HRN{}) {
				t.Fatalf("HRN on error: got %+v, want zero", h)
			}
		})
	}
}

func TestHRN_String(t *testing.T) {
	// Every entity HRN the domain builds parses back to itself.
	for _, s := range []string{
		iam.RealmHRN("r1"), iam.UserHRN("r1", "u"), iam.AppHRN("r1", "a"), iam.GroupHRN("r1", "g"),
		iam.PolicyHRN("r1", "p"), iam.ProjectHRN("r1", "proj-1"),
	} {
		h, err := iam.ParseHRN("hrn", s)
		if err != nil {
			t.Fatalf("ParseHRN(%q): %v", s, err)
		}
		if got := h.String(); got != s {
			t.Fatalf("String: got %q, want %q", got, s)
		}
	}
	h := iam.HRN{Partition: "here", Service: "data", Account: "r1", Resource: "cat:1"}
	if got, want := h.String(), "hrn:here:data::r1:cat:1"; got != want {
		t.Fatalf("String: got %q, want %q", got, want)
	}
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		p  string
		ok bool
	}{
		{"hrn:here:data::r1:cat-1", true},
		{"hrn:here:data::r1:cat-*", true},
		{"hrn:here:data::r1:*", true},
		{"hrn:here:data::*", false},   // the account is not complete: would match every realm
		{"hrn:here:*", false},         // every service of every realm
		{"hrn:here:data::r1*", false}, // would match realm r1x
		{"hrn:here:data:eu:r1*", false},
		{"hrn:here:data::r1:p/*", true},
		{"hrn:here::eu:r1:*", false}, // the service is empty
		{"hrn:here:data:::*", false}, // the account is empty
		{"hrn:here:data:eu:r1:x/*", true},
		{"*", false},
		{"hrn:*", false},
		{"hrn::*", false},
		{"hrn:here*", false},
		{"hrn:here:data::r1:**", false},
		{"hrn:here:data::r1:*x*", false},
		{"hrn:here:data::r1:*x", false},
		{"hrn:here:d*ta::r1:*", false},
		{"hrn:here:data::r1:a b*", false},
		{"hrn:here:data::r1:\n*", false},
		{"arn:here:data::r1:*", false},
		{"", false},
		{"hrn:here:data::r1:", false},
		{"cat-*", false},
		{"hrn:here:data::r1:" + strings.Repeat("x", iam.MaxHRNLength) + "*", false},
		{"hrn:here:data::r1:" + strings.Repeat("x", iam.MaxHRNLength), false},
	}
	for _, tt := range tests {
		err := iam.ValidatePattern("statements[0].resources[0]", tt.p)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePattern(%.60q): got error %v, want ok=%v", tt.p, err, tt.ok)
			continue
		}
		if err != nil {
			if got := iam.ErrorCode(err); got != iam.EInvalid {
				t.Errorf("ValidatePattern(%.60q) code: got %q, want %q", tt.p, got, iam.EInvalid)
			}
			if got := iam.ErrorField(err); got != "statements[0].resources[0]" {
				t.Errorf("ValidatePattern(%.60q) field: got %q, want %q", tt.p, got, "statements[0].resources[0]")
			}
		}
	}
}

func TestMatchResource(t *testing.T) {
	tests := []struct {
		pattern, hrn string
		want         bool
	}{
		{"hrn:here:data::r1:cat-1", "hrn:here:data::r1:cat-1", true},
		{"hrn:here:data::r1:cat-1", "hrn:here:data::r1:cat-10", false},
		{"hrn:here:data::r1:cat-1", "hrn:here:data::r1:cat-", false},
		{"hrn:here:data::r1:cat-*", "hrn:here:data::r1:cat-7", true},
		{"hrn:here:data::r1:cat-*", "hrn:here:data::r1:cat-", true},
		{"hrn:here:data::r1:cat-*", "hrn:here:data::r1:cat", false},
		{"hrn:here:data::r1:cat-*", "hrn:here:data::r1:dog-1", false},
		{"hrn:here:data::r1:cat-*", "hrn:here:data::r2:cat-1", false},
		{"hrn:here:data::r1:cat-*", "xhrn:here:data::r1:cat-1", false},
		{"hrn:here:data::r1:team-a-*", "hrn:here:data::r1:team-a", false},
		{"hrn:here:data::r1:team-a-*", "hrn:here:service::r1:team-a-logs", false},
		{"hrn:here:*", "hrn:here:data::r1:x", true},
		{"hrn:here:*", "hrn:here-cn:data::r1:x", false},
		// A "*" inside an HRN is not a wildcard.
		{"hrn:here:data::r1:cat-*", "hrn:here:data::r1:cat-*", true},
		{"hrn:here:data::r1:cat-1", "hrn:here:data::r1:cat-*", false},
	}
	for _, tt := range tests {
		if got := iam.MatchResource(tt.pattern, tt.hrn); got != tt.want {
			t.Errorf("MatchResource(%q, %q): got %v, want %v", tt.pattern, tt.hrn, got, tt.want)
		}
	}
}

func TestMatchAction(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "read", true},
		{"read", "read", true},
		{"read", "Read", false},
		{"read", "reads", false},
		{"re*", "read", false},
	}
	for _, tt := range tests {
		if got := iam.MatchAction(tt.pattern, tt.action); got != tt.want {
			t.Errorf("MatchAction(%q, %q): got %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

func TestProjectIDFromHRN(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{iam.ProjectHRN("r1", "proj-1"), "proj-1"},
		{"hrn:here:authorization::r1:project/abcd", "abcd"},
		{"hrn:here:authorization::r2:project/proj-1", ""},
		{"hrn:here:authorization:::project/proj-1", ""},
		{"hrn:here:data::r1:project/proj-1", ""},
		{"hrn:here:authorization::r1:group/proj-1", ""},
		{"hrn:here:authorization::r1:project/", ""},
		{"hrn:here:authorization::r1:project/p-1:policy/x", ""},
		{"hrn:here:authorization::r1:projects/proj-1", ""},
		{"proj-1", ""},
		{"", ""},
		{"hrn:here:authorization::r1:project/proj-*", ""},
		// Only the canonical form is a project of realm r1.
		{"hrn:other:authorization::r1:project/proj-1", ""},
		{"hrn:here:authorization:eu-west:r1:project/proj-1", ""},
		{"hrn:here:authorization::r1:project/a/b", ""},
	}
	for _, tt := range tests {
		got, err := iam.ProjectIDFromHRN("scope", "r1", tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ProjectIDFromHRN(%q): got %q, want an error", tt.in, got)
				continue
			}
			if c, f := iam.ErrorCode(err), iam.ErrorField(err); c != iam.EInvalid || f != "scope" {
				t.Errorf("ProjectIDFromHRN(%q): got code %q field %q, want %q %q", tt.in, c, f, iam.EInvalid, "scope")
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ProjectIDFromHRN(%q): got %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}
