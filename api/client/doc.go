// Package client is the Go client of iam's HTTP API for services that check
// access and manage identities across regions.
//
// A Client holds an ordered list of region endpoints, nearest first. Every
// call goes to the first endpoint; a 503 replica_behind, 503 unavailable, 429
// or network failure is retried on the same endpoint with exponential backoff
// (github.com/cenkalti/backoff/v4), never sooner than the answer's
// Retry-After, and then fails over to the next endpoint. Each retry and each
// failover is counted by cause (Client.Stats) and reported to an optional
// callback (WithOnRetry).
//
// Writes carry an Idempotency-Key made once per logical write, so a retried
// or failed-over write is applied at most once; a write without a key is
// never retried. A Session remembers the latest consistency token it has
// seen and sends it with every read, so a check after a write is never
// answered from before that write.
//
// The package imports only the standard library, backoff/v4 and
// golang.org/x/oauth2: it does not pull in the server.
package client
