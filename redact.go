package iam

// Redact returns e without secrets or personal data: hashes of passwords,
// client secrets and API keys, and users' emails and names. The change feed
// shows only redacted events.
func Redact(e Event) Event {
	switch e := e.(type) {
	case IdentityCreated:
		e.Email, e.Name, e.PasswordHash, e.EmailIndex, e.Sealed = "", "", "", "", nil
		return e
	case PersonalDataChanged:
		e.EmailIndex, e.Sealed = "", nil
		return e
	case InvitationCreated:
		e.Invitation.EmailIndex, e.Invitation.Sealed, e.Invitation.TokenHash = "", nil, ""
		return e
	case InvitationRenewed:
		e.TokenHash = ""
		return e
	case AuthCodeIssued:
		e.CodeHash = ""
		return e
	case AuthCodeRedeemed:
		e.CodeHash = ""
		return e
	case PasswordChanged:
		e.PasswordHash = ""
		return e
	case PasswordResetRequested:
		e.TokenHash = ""
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
