// Package api is iam's HTTP face and only that: OAuth 2.0 tokens and
// discovery, the identity provider's pages and endpoints, the management
// API, checks, the change feed, replica lag as JSON and a page, metrics and
// health. The contract is api/openapi.json, an OpenAPI 3.1 document of
// every endpoint, embedded as OpenAPI and served at GET /openapi.json; the
// end-to-end tests hold their traffic to it (package api/openapitest,
// docs/openapi.md). It maps domain errors to RFC 9457 problem details; the
// code → status table lives here and nowhere else.
//
// A Server consumes small interfaces defined here (Writer, Replica, Log,
// Vault) and runs in one of two modes, given as Config.Mode: a *Hub writes
// through its Writer and signs tokens; a *Region relays writes and token
// requests to the hub (package api/relay) and verifies tokens with the
// hub's keys. Lag is judged by package replica/lag, signing keys are kept
// by package api/auth, and the first realm is made by writer.Bootstrap.
package api
