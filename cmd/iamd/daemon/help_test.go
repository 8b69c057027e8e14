package daemon_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/replica"
)

// TestParseFlags_Help: --help, -h and "help" name every mode and what it
// is for, then the flags of the mode asked about (and only those).
func TestParseFlags_Help(t *testing.T) {
	modes := []string{"iamd [flags]", "all-in-one", "iamd hub [flags]", "a hub node", "iamd region [flags]", "a region", "iamd pki [flags] DIR", "certificates"}
	for _, tc := range []struct {
		args        []string
		title, flag string // the mode's title and one flag only it has
		notFlag     string // a flag of another mode
	}{
		{[]string{"--help"}, "Flags of the all-in-one (iamd):", "-regions", "-hub-leaf"},
		{[]string{"-h"}, "Flags of the all-in-one (iamd):", "-regions", "-leaf-listen"},
		{[]string{"help"}, "Flags of the all-in-one (iamd):", "-regions", "-hub-leaf"},
		{[]string{"hub", "--help"}, "Flags of iamd hub:", "-leaf-listen", "-hub-leaf"},
		{[]string{"region", "-h"}, "Flags of iamd region:", "-hub-leaf", "-leaf-listen"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			m := daemon.NewMain()
			m.Config.Stderr = &out
			if err := m.ParseFlags(tc.args); !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("got %v, want flag.ErrHelp", err)
			}
			help := out.String()
			for _, want := range append(modes, tc.title, "  "+tc.flag+" ") {
				if !strings.Contains(help, want) {
					t.Errorf("help lacks %q:\n%s", want, help)
				}
			}
			if strings.Contains(help, "  "+tc.notFlag+" ") {
				t.Errorf("help lists %s, a flag of another mode:\n%s", tc.notFlag, help)
			}
		})
	}
}

// TestParseFlags_UnknownMode points to --help.
func TestParseFlags_UnknownMode(t *testing.T) {
	var out bytes.Buffer
	m := daemon.NewMain()
	m.Config.Stderr = &out
	err := m.ParseFlags([]string{"hubb"})
	if err == nil || !strings.Contains(err.Error(), `"hubb"`) || !strings.Contains(err.Error(), "iamd --help") {
		t.Fatalf("got %v, want an error naming the mode and pointing to iamd --help", err)
	}
}

// TestParseFlags_BulkCatchUp: --bulk-catch-up reaches the replicas'
// configuration, the default being the replica's own.
func TestParseFlags_BulkCatchUp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{nil, replica.DefaultBulkCatchUp},
		{[]string{"--bulk-catch-up", "-1"}, -1},
		{[]string{"--bulk-catch-up=5000"}, 5000},
	} {
		m := daemon.NewMain()
		m.Config.Stderr = io.Discard
		if err := m.ParseFlags(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if m.Config.BulkCatchUp != tc.want {
			t.Errorf("%q: BulkCatchUp %d, want %d", tc.args, m.Config.BulkCatchUp, tc.want)
		}
	}
}
