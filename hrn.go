package iam

import (
	"strings"
	"unicode"
)

// HRN is a HERE Resource Name: hrn:<partition>:<service>:<region>:<account>:<resource>.
// Region is usually empty; the resource part may itself contain colons
// (e.g. project/p-1:policy/x).
type HRN struct {
	Partition string
	Service   string
	Region    string
	Account   string
	Resource  string
}

// MaxHRNLength bounds HRNs and patterns so that no input can grow the state
// without limit.
const MaxHRNLength = 1024

// ParseHRN parses s, returning an invalid_argument error naming field when it
// is not an HRN.
func ParseHRN(field, s string) (HRN, error) {
	if len(s) > MaxHRNLength {
		return HRN{}, FieldErrorf(field, "HRN is longer than %d bytes", MaxHRNLength)
	}
	if !strings.HasPrefix(s, "hrn:") {
		return HRN{}, FieldErrorf(field, "%q is not an HRN: it must start with \"hrn:\"", s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' {
			return HRN{}, FieldErrorf(field, "%q is not an HRN: it contains %q", s, r)
		}
	}
	parts := strings.SplitN(s[len("hrn:"):], ":", 5)
	if len(parts) != 5 {
		return HRN{}, FieldErrorf(field, "%q is not an HRN: want hrn:<partition>:<service>:<region>:<account>:<resource>", s)
	}
	h := HRN{Partition: parts[0], Service: parts[1], Region: parts[2], Account: parts[3], Resource: parts[4]}
	switch {
	case h.Partition == "":
		return HRN{}, FieldErrorf(field, "%q is not an HRN: the partition is empty", s)
	case h.Service == "":
		return HRN{}, FieldErrorf(field, "%q is not an HRN: the service is empty", s)
	case h.Resource == "":
		return HRN{}, FieldErrorf(field, "%q is not an HRN: the resource is empty", s)
	}
	return h, nil
}

// String formats h in its canonical form.
func (h HRN) String() string {
	return "hrn:" + h.Partition + ":" + h.Service + ":" + h.Region + ":" + h.Account + ":" + h.Resource
}

// ValidatePattern checks a policy resource pattern: an exact HRN, or a prefix
// of one ending in a single "*". A prefix names partition, service, region
// and account in full — the "*" comes after the fifth colon — so that no
// pattern reaches past one account ("hrn:here:data::r1*" would match realm
// r1x). ValidateRealmPattern adds that the account is the policy's realm.
// docs/hrn.md states the grammar.
func ValidatePattern(field, p string) error {
	if !strings.HasSuffix(p, "*") {
		_, err := ParseHRN(field, p)
		return err
	}
	prefix := strings.TrimSuffix(p, "*")
	if len(p) > MaxHRNLength {
		return FieldErrorf(field, "pattern is longer than %d bytes", MaxHRNLength)
	}
	const want = "want an HRN, or an HRN prefix naming the account in full, such as hrn:here:data::<realm>:* or hrn:here:data::<realm>:catalog-*"
	if !strings.HasPrefix(prefix, "hrn:") {
		return FieldErrorf(field, "%q is not an HRN pattern: %s", p, want)
	}
	for _, r := range prefix {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' {
			return FieldErrorf(field, "%q is not an HRN pattern: it contains %q (only one trailing * is allowed)", p, r)
		}
	}
	parts := strings.SplitN(prefix[len("hrn:"):], ":", 5)
	switch {
	case len(parts) < 5:
		return FieldErrorf(field, "%q is not an HRN pattern: the * must follow the account and its colon; %s", p, want)
	case parts[0] == "":
		return FieldErrorf(field, "%q is not an HRN pattern: the partition is empty", p)
	case parts[1] == "":
		return FieldErrorf(field, "%q is not an HRN pattern: the service is empty", p)
	case parts[3] == "":
		return FieldErrorf(field, "%q is not an HRN pattern: the account is empty", p)
	}
	return nil
}

// ValidateRealmPattern checks a pattern of a policy of realm: valid, and a
// prefix pattern names realm as its account, so that a realm's policy never
// reaches another realm's resources.
func ValidateRealmPattern(field, realm, p string) error {
	if err := ValidatePattern(field, p); err != nil {
		return err
	}
	if !strings.HasSuffix(p, "*") {
		return nil
	}
	if parts := strings.SplitN(p[len("hrn:"):], ":", 5); parts[3] != realm {
		return FieldErrorf(field, "%q names account %q: a pattern of realm %s must name it (hrn:%s:%s:%s:%s:…*)", p, parts[3], realm, parts[0], parts[1], parts[2], realm)
	}
	return nil
}

// MatchResource reports whether a (validated) pattern matches an HRN.
func MatchResource(pattern, hrn string) bool {
	if n := len(pattern); n > 0 && pattern[n-1] == '*' {
		return strings.HasPrefix(hrn, pattern[:n-1])
	}
	return pattern == hrn
}

// MatchAction reports whether an action pattern ("*" or a name) matches action.
func MatchAction(pattern, action string) bool {
	return pattern == "*" || pattern == action
}

// Entity HRNs. Identities live in the account service, access entities in
// the authorization service, as in HERE IAM.
func RealmHRN(realm string) string { return "hrn:here:account::" + realm + ":realm/" + realm }
func UserHRN(realm, id string) string {
	return "hrn:here:account::" + realm + ":user/" + id
}
func AppHRN(realm, id string) string { return "hrn:here:account::" + realm + ":app/" + id }
func GroupHRN(realm, id string) string {
	return "hrn:here:authorization::" + realm + ":group/" + id
}
func PolicyHRN(realm, id string) string {
	return "hrn:here:authorization::" + realm + ":policy/" + id
}
func ProjectHRN(realm, id string) string {
	return "hrn:here:authorization::" + realm + ":project/" + id
}

// ProjectIDFromHRN returns the project id of a project HRN in realm, or an
// invalid_argument error naming field.
func ProjectIDFromHRN(field, realm, s string) (string, error) {
	h, err := ParseHRN(field, s)
	if err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(h.Resource, "project/")
	if !ok || ValidID(field, id) != nil || s != ProjectHRN(realm, id) {
		return "", FieldErrorf(field, "%q is not a project HRN of realm %s (want %s)", s, realm, ProjectHRN(realm, "<id>"))
	}
	return id, nil
}
