package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Mail is one message to a person: a password reset or an invitation. Its
// body carries a secret (the token), so a MailSender must deliver it and
// never log it; the event log never sees it.
type Mail struct {
	Kind    string    `json:"kind"` // "passwordReset" or "invitation"
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	Token   string    `json:"token"`
	At      time.Time `json:"at"`
}

// MailSender delivers mail. Implementations must be safe for concurrent use.
type MailSender interface {
	Send(ctx context.Context, m Mail) error
}

// FileMailSender is the default MailSender: each mail is a JSON file (mode
// 0600) in Dir (made 0700), for a relay or an operator to pick up.
type FileMailSender struct {
	Dir string
}

// Send writes m to a new file in the outbox.
func (f *FileMailSender) Send(_ context.Context, m Mail) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%s-%s-%s.json", m.At.UTC().Format("20060102T150405.000000000"), m.Kind, hex.EncodeToString(b[:]))
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(f.Dir, name), data)
}

// writeFileAtomic writes a 0600 file by rename, so a crash leaves the old or
// the new content, never half.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
