package natsnode_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nkeys"
)

// rawLeaf speaks the leaf-node protocol by hand: a thief with a region's
// seed and certificate running a patched server that ignores the
// permissions the hub sends in INFO, so that only the hub's enforcement
// stands between it and the log.
type rawLeaf struct {
	conn  net.Conn
	lines chan string
	done  chan struct{}

	mu  sync.Mutex
	all []string
}

// dialRawLeaf reads the hub's INFO (with its nonce), upgrades to TLS, and
// sends a CONNECT signed with seed, then PING.
func dialRawLeaf(addr string, tlsCfg *tls.Config, seed []byte, domain string) (*rawLeaf, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		c.Close()
		return nil, fmt.Errorf("read INFO: %q, %v", line, err)
	}
	var info struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(line[5:]), &info); err != nil {
		c.Close()
		return nil, fmt.Errorf("INFO: %w", err)
	}
	tc := tls.Client(c, tlsCfg)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	br = bufio.NewReader(tc)
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		tc.Close()
		return nil, err
	}
	sig, err := kp.Sign([]byte(info.Nonce))
	if err != nil {
		tc.Close()
		return nil, err
	}
	pub, _ := kp.PublicKey()
	b, _ := json.Marshal(map[string]any{
		"version": "2.15.3", "server_id": "NROGUERAW", "name": "rogue-raw", "headers": true,
		"remote_account": "IAM", "protocol": 1, "domain": domain,
		"nkey": pub, "sig": base64.RawURLEncoding.EncodeToString(sig),
	})
	if _, err := fmt.Fprintf(tc, "CONNECT %s\r\nPING\r\n", b); err != nil {
		tc.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	r := &rawLeaf{conn: tc, lines: make(chan string, 4096), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer close(r.lines)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "PING" {
				_ = r.send("PONG\r\n")
			}
			r.mu.Lock()
			r.all = append(r.all, l)
			r.mu.Unlock()
			select {
			case r.lines <- l:
			default:
			}
		}
	}()
	return r, nil
}

func (r *rawLeaf) send(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := r.conn.Write([]byte(s))
	return err
}

// waitFor returns the first line from now on containing substr, or ""
// when the connection closes or d passes.
func (r *rawLeaf) waitFor(substr string, d time.Duration) string {
	to := time.After(d)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				return ""
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-to:
			return ""
		}
	}
}

// seen reports whether any line so far contained substr.
func (r *rawLeaf) seen(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.all {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func (r *rawLeaf) Close() { r.conn.Close() }
