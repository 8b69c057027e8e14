// Package api is iam's HTTP face: OAuth 2.0 tokens and discovery, the
// management API, checks, the change feed, replica lag, metrics and health,
// all as ../shared/API.md describes. It maps domain errors to RFC 9457
// problem details; the code → status table lives here and nowhere else.
package api
