package iam_test

import (
	"strings"
	"testing"
	"time"

	"github.com/iam-project/iam"
)

// everyEvent holds one event of every registered type, in an order in which
// each applies to a fresh state.
func everyEvent() []iam.Event {
	in := iam.InRealm{Realm: realm}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	code := iam.AuthCode{Client: "a", RedirectURI: "https://a.example/cb", Challenge: "c", ExpiresAt: at.Add(time.Minute)}
	inv := iam.Invitation{UserID: "v", EmailIndex: "bi", Sealed: []byte("s"), TokenHash: "it", ExpiresAt: at.Add(time.Hour)}
	return []iam.Event{
		iam.Heartbeat{At: at},
		iam.RealmCreated{InRealm: in, Name: "R"},
		iam.IdentityCreated{InRealm: in, ID: "u", Kind: iam.KindUser, Email: "u@example.com", Name: "U", PasswordHash: argon},
		iam.IdentityCreated{InRealm: in, ID: "a", Kind: iam.KindApp, Name: "A"},
		iam.GroupCreated{InRealm: in, ID: "g", Name: "G"},
		iam.PolicyCreated{InRealm: in, ID: "p", Name: "P", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("x")}}}},
		iam.ProjectCreated{InRealm: in, ID: "proj", Name: "Project"},
		iam.MemberAdded{InRealm: in, Group: "g", Identity: "u"},
		iam.MemberRemoved{InRealm: in, Group: "g", Identity: "u"},
		iam.RoleGranted{InRealm: in, Identity: "u", Role: iam.RoleOrgAdmin},
		iam.RoleRevoked{InRealm: in, Identity: "u", Role: iam.RoleOrgAdmin},
		iam.PolicyAttached{InRealm: in, Policy: "p", Target: "g"},
		iam.PolicyDetached{InRealm: in, Policy: "p", Target: "g"},
		iam.ProjectMemberSet{InRealm: in, Project: "proj", Member: "g", Policies: []string{"p"}},
		iam.ProjectMemberRemoved{InRealm: in, Project: "proj", Member: "g"},
		iam.ProjectResourceAdded{InRealm: in, Project: "proj", HRN: data("x"), Relation: iam.RelationHome},
		iam.ProjectResourceRemoved{InRealm: in, Project: "proj", HRN: data("x")},
		iam.ProjectResourceAdded{InRealm: in, Project: "proj", HRN: data("y"), Relation: iam.RelationHome},
		iam.ResourceLinkableSet{InRealm: in, Project: "proj", HRN: data("y"), Linkable: false},
		iam.ProjectPolicyCreated{InRealm: in, Project: "proj", ID: "pp", Name: "PP", Statements: []iam.Statement{{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{data("x")}}}},
		iam.ProjectDefaultsSet{InRealm: in, Project: "proj", Policies: []string{iam.ProjectPolicyHRN(realm, "proj", "pp")}},
		iam.ProjectMemberSet{InRealm: in, Project: "proj", Member: "g", Policies: []string{iam.ProjectPolicyHRN(realm, "proj", "pp")}},
		iam.ProjectPolicyDeleted{InRealm: in, Project: "proj", ID: "pp"},
		iam.PlanCreated{InRealm: in, ID: "plan", Name: "Plan", Policies: []string{"p"}},
		iam.PlanAttached{InRealm: in, Plan: "plan", Target: "g"},
		iam.PlanDetached{InRealm: in, Plan: "plan", Target: "g"},
		iam.CredentialAdded{InRealm: in, App: "a", CredentialID: "c", ClientID: "client", SecretHash: argon},
		iam.CredentialStatusChanged{InRealm: in, App: "a", CredentialID: "c", Disabled: true},
		iam.CredentialRemoved{InRealm: in, App: "a", CredentialID: "c"},
		iam.APIKeyAdded{InRealm: in, App: "a", KeyID: "k", KeyHash: argon},
		iam.APIKeyStatusChanged{InRealm: in, App: "a", KeyID: "k", Disabled: true},
		iam.APIKeyRemoved{InRealm: in, App: "a", KeyID: "k"},
		iam.DefaultProjectSet{InRealm: in, App: "a", Project: "proj"},
		iam.DefaultProjectSet{InRealm: in, App: "a"},
		iam.ManagerAdded{InRealm: in, Kind: iam.ManagedApp, ID: "a", Manager: "u"},
		iam.ManagerRemoved{InRealm: in, Kind: iam.ManagedApp, ID: "a", Manager: "u"},
		iam.AppShared{InRealm: in, App: "a", With: "g"},
		iam.AppUnshared{InRealm: in, App: "a", With: "g"},
		iam.SignInFailed{InRealm: in, User: "u", At: at},
		iam.SignInSucceeded{InRealm: in, User: "u", At: at},
		iam.AuthCodeIssued{InRealm: in, User: "u", CodeHash: "h", Code: code, At: at},
		iam.AuthCodeRedeemed{InRealm: in, User: "u", CodeHash: "h", At: at},
		iam.RefreshFamilyStarted{InRealm: in, User: "u", ID: "f", At: at,
			Family: iam.RefreshFamily{Client: "a", StartedAt: at, ExpiresAt: at.Add(time.Hour), Current: "r1"}},
		iam.RefreshTokenRotated{InRealm: in, User: "u", Family: "f", NewHash: "r2", At: at},
		iam.RefreshFamilyRevoked{InRealm: in, User: "u", Family: "f", Reason: "test"},
		iam.TokensRevoked{InRealm: in, Identity: "u", Before: at, Reason: "test"},
		iam.PasswordResetRequested{InRealm: in, User: "u", TokenHash: "rt", ExpiresAt: at.Add(time.Hour)},
		iam.PasswordChanged{InRealm: in, User: "u", PasswordHash: argon, At: at, ByReset: true},
		iam.InvitationCreated{InRealm: in, ID: "i", Invitation: inv},
		iam.InvitationRenewed{InRealm: in, ID: "i", TokenHash: "it2", ExpiresAt: at.Add(2 * time.Hour)},
		iam.InvitationAccepted{InRealm: in, ID: "i", User: "v"},
		iam.PersonalDataChanged{InRealm: in, User: "u", EmailIndex: "bi2", Sealed: []byte("s2")},
		iam.IdentityStatusChanged{InRealm: in, ID: "u", Status: iam.StatusDeactivated},
		iam.IdentityDeleted{InRealm: in, ID: "u"},
		iam.SigningKeyRevoked{InRealm: in, KID: "kid-1", At: at},
	}
}

// TestApplyEvents_EveryRegisteredType: every registered event type is
// accepted by ApplyEvents and applies itself, reporting what it changed.
func TestApplyEvents_EveryRegisteredType(t *testing.T) {
	s := iam.NewState()
	applied := map[string]bool{}
	for _, e := range everyEvent() {
		var changes []iam.Change
		if err := s.ApplyEvents([]iam.Event{e}, func(c iam.Change) { changes = append(changes, c) }); err != nil {
			t.Fatalf("ApplyEvents(%s): %v", e.EventType(), err)
		}
		if _, ok := e.(iam.Heartbeat); !ok && len(changes) == 0 {
			t.Errorf("%s: got no change, want the entity or edge it changed", e.EventType())
		}
		applied[e.EventType()] = true
	}
	for _, name := range iam.EventTypeNames() {
		if !applied[name] {
			t.Errorf("registered event type %s: not applied by this test; add it to everyEvent", name)
		}
	}
	if got, want := len(applied), len(iam.EventTypeNames()); got != want {
		t.Errorf("event types applied: got %d, want %d (the registered ones)", got, want)
	}
}

// embedded has every method of a registered event, but is not one.
type embedded struct{ iam.RealmCreated }

// TestApplyEvents_RefusesUnknown: an event whose type is not registered is
// an error naming it, and nothing of its batch or entry is applied.
func TestApplyEvents_RefusesUnknown(t *testing.T) {
	created := iam.RealmCreated{InRealm: iam.InRealm{Realm: realm}, Name: "R"}
	tests := []struct {
		name string
		ev   iam.Event
		want string
	}{
		{"nil", nil, "unknown event <nil>"},
		{"embedding a registered type", embedded{created}, "unknown event iam_test.embedded"},
		{"pointer to a registered type", &created, "unknown event *iam.RealmCreated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := iam.NewState()
			err := s.ApplyEvents([]iam.Event{created, tt.ev}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ApplyEvents: got %v, want an error containing %q", err, tt.want)
			}
			entry := iam.LogEntry{Seq: 7, Commits: []iam.Commit{{Events: []iam.Event{created}}, {Events: []iam.Event{tt.ev}}}}
			if err := s.ApplyEntry(entry, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ApplyEntry: got %v, want an error containing %q", err, tt.want)
			}
			if s.Realm(realm) != nil || s.Seq() != 0 {
				t.Fatalf("after refusals: got realm %v at seq %d, want nothing applied", s.Realm(realm), s.Seq())
			}
		})
	}
}
