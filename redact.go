package iam

// Redact returns e without secrets or personal data: hashes of passwords,
// client secrets and API keys, and users' emails and names. The change feed
// shows only redacted events.
func Redact(e Event) Event {
	switch e := e.(type) {
	case IdentityCreated:
		e.Email, e.Name, e.PasswordHash = "", "", ""
		return e
	case CredentialAdded:
		e.SecretHash = ""
		return e
	case APIKeyAdded:
		e.KeyHash = ""
		return e
	}
	return e
}
