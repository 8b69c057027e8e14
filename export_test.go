package iam

// EventTypeNames lists the registered event types, for the black-box tests.
func EventTypeNames() []string {
	names := make([]string, len(eventTypes))
	for i, e := range eventTypes {
		names[i] = e.EventType()
	}
	return names
}

// AddToSet puts k in an entity's set, for tests that change a copy behind
// the domain's back.
func AddToSet(s *set, k string) { s.add(k) }
