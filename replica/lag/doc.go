// Package lag judges how far each region's replica is behind the log: it
// measures the local regions once a second (and on demand), bounds the lag
// of a region cut off from the log from its last applied entry and the
// hub's heartbeat, keeps the statuses other processes publish about their
// regions (the peer board), and holds the last minutes of samples for the
// lag page. It serves nothing itself: package api turns its figures into
// JSON, metrics and the page.
package lag
