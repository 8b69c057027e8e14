package iam

import (
	"errors"
	"fmt"
)

// Error codes. They are the API's stable `code` field; the code → HTTP status
// table lives only in package api.
const (
	EInvalid          = "invalid_argument"
	EUnauthenticated  = "unauthenticated"
	EPermissionDenied = "permission_denied"
	ENotFound         = "not_found"
	EConflict         = "conflict"
	ELimitExceeded    = "limit_exceeded"
	ERateLimited      = "rate_limited"
	EReplicaBehind    = "replica_behind"
	EUnavailable      = "unavailable"
	EInternal         = "internal"
)

// Error is a domain error with a machine-readable code. Field names the
// offending input field, where there is one.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("iam %s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("iam %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an invalid_argument *Error naming the field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the first *Error in err's chain; other
// errors are internal and their text is not for clients.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field of the first *Error in err's chain, if any.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
