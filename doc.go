// Package iam is the domain of the iam service: realms, identities (users and
// apps), groups, roles, policies, projects and resources named by HRN; the
// commands that change them, the events those commands produce, and the
// evaluation of authorization checks.
//
// It is pure: it imports only the standard library, so every rule here is
// unit-testable without NATS or Pebble. Infrastructure packages (eventlog,
// projector, replica, api) talk to each other in the terms defined here.
package iam
