package daemon

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Listeners are the addresses a running iamd listens on, as URLs: what
// --addr-file writes once it is ready, so that a script can start it on
// free ports (--http 127.0.0.1:0, --nats-listen 127.0.0.1:-1) and learn
// them. A listener the process does not open is left out: a secure
// region's NATS server has no client listener.
type Listeners struct {
	PID     int    `json:"pid"`
	HTTP    string `json:"http"`              // http:// or https://
	NATS    string `json:"nats,omitempty"`    // client listener: nats://, or tls:// in secure mode
	Cluster string `json:"cluster,omitempty"` // hub route listener: nats-route://, or tls://
	Leaf    string `json:"leaf,omitempty"`    // hub leaf listener: nats-leaf://, or tls://
}

// Listeners returns the addresses of the running process.
func (m *Main) Listeners() Listeners {
	l := Listeners{PID: os.Getpid(), HTTP: m.URL()}
	if m.ns == nil {
		return l
	}
	secure := m.Config.NATSTLSDir != ""
	scheme := func(plain string) string {
		if secure {
			return "tls://"
		}
		return plain
	}
	if a, ok := m.ns.Addr().(*net.TCPAddr); ok && a != nil {
		l.NATS = scheme("nats://") + hostPort(a.IP, a.Port)
	}
	if a := m.ns.ClusterAddr(); a != nil {
		l.Cluster = scheme("nats-route://") + hostPort(a.IP, a.Port)
	}
	if v, err := m.ns.Varz(nil); err == nil && v.LeafNode.Port > 0 {
		l.Leaf = scheme("nats-leaf://") + hostPort(net.ParseIP(v.LeafNode.Host), v.LeafNode.Port)
	}
	return l
}

// hostPort joins ip and port; an unspecified or missing address is
// reported as 127.0.0.1.
func hostPort(ip net.IP, port int) string {
	host := "127.0.0.1"
	if ip != nil && !ip.IsUnspecified() {
		host = ip.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// writeAddrFile writes m.Listeners() as JSON to path, atomically (a
// reader sees the whole file or none), 0644: addresses are no secret.
func (m *Main) writeAddrFile(path string) error {
	data, err := json.MarshalIndent(m.Listeners(), "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
