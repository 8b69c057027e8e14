package replica

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// checkpointFS is the read model's filesystem, except that files and
// directories under the checkpoints' root are never synced. A Pebble
// checkpoint syncs every file it copies and every directory it makes,
// which cost ~30 ms per checkpoint, more than the thousand entries before
// it took to apply. Unsynced is safe here: the tables are hard links to
// the read model's own (synced by Pebble); what a crash can lose is the
// tail of a checkpoint's copied WAL or the whole directory, and a
// checkpoint whose position is not its name is never used (acquire).
type checkpointFS struct {
	vfs.FS
	root string // with a trailing separator
}

func (fs checkpointFS) under(name string) bool { return strings.HasPrefix(name, fs.root) }

func (fs checkpointFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !fs.under(name) {
		return f, err
	}
	return unsyncedFile{f}, nil
}

func (fs checkpointFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil || !fs.under(name) {
		return f, err
	}
	return unsyncedFile{f}, nil
}

// Unwrap is nil, as vfs.FS asks of a wrapper that changes behaviour:
// nothing may bypass it.
func (fs checkpointFS) Unwrap() vfs.FS { return nil }

// unsyncedFile is a file whose syncs do nothing.
type unsyncedFile struct{ vfs.File }

func (unsyncedFile) Sync() error                { return nil }
func (unsyncedFile) SyncData() error            { return nil }
func (unsyncedFile) SyncTo(int64) (bool, error) { return true, nil }
