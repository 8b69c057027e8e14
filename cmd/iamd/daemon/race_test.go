//go:build race

package daemon_test

// raceOn: the race detector slows a real iamd 10–15×; the history property
// test then records 200 writes, and `.ci/run` runs its 500 without it.
const raceOn = true
