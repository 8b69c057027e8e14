package iam

// EventTypeNames lists the registered event types, for the black-box tests.
func EventTypeNames() []string {
	names := make([]string, len(eventTypes))
	for i, e := range eventTypes {
		names[i] = e.EventType()
	}
	return names
}
