// Package sim runs iam's multi-region topology under injected faults and
// measures what clients see: propagation delay per region, time-to-revoke,
// stale answers by consistency mode, retries and backoff delays by cause,
// lost and duplicated events, and convergence of the regions' read models.
//
// Everything on the data path is real: the hub and regions are iamd
// processes (package cmd/iamd/daemon) run in-process on loopback, each
// hub↔region link passes through a toxiproxy fault proxy (sim/faultproxy),
// and the workload talks HTTP through the Go client (api/client). Only the
// schedule is synthetic: a Scenario (JSON, testdata/sim/*.json) names the
// topology, the link conditions and fault windows, the seeded workload, the
// client's backoff policy and the SLOs a run must meet.
//
// A Run produces a Report: figures as JSON, a summary table, SLO verdicts,
// and (WriteReport) PNG plots and an HTML page. docs/simulation.md explains
// each measure and how it is taken; docs/backoff.md the retry policy.
package sim
