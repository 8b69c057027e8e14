package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/iam-project/iam/eventlog/natsnode/natspki"
)

// PKI is `iamd pki [flags] DIR`: it writes everything a secured topology
// needs before its first start into DIR (files 0600, directories 0700):
//
//   - the NATS PKI in natspki's layout (--nats-tls-dir of every hub node
//     and region): CAs, certificates, the route password, region nkeys;
//   - an HTTPS CA (https-ca.pem, for clients) and one server certificate
//     per process, https/<name>.{pem,key} (--tls-cert, --tls-key);
//   - secrets/: the hub's token and log signing keys and idempotency
//     secret (--secrets of every hub node, the same on each), and
//     secrets/log-keys.pub.json, the public file regions take as --log-keys.
//
// Existing certificates are overwritten; existing secrets are kept.
func PKI(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("iamd pki", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var hubs, regions, hosts string
	var validity time.Duration
	fs.StringVar(&hubs, "hubs", "hub-1,hub-2,hub-3", "comma-separated hub node names (their --nats-name)")
	fs.StringVar(&regions, "regions", "eu-west,us-east", "comma-separated region names (their --region)")
	fs.StringVar(&hosts, "hosts", "", "comma-separated extra IPs or DNS names the hub nodes and HTTPS listeners are reached on (127.0.0.1 and localhost are always included)")
	fs.DurationVar(&validity, "validity", 365*24*time.Hour, "validity of every certificate")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: iamd pki [flags] DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("iamd pki: one directory expected")
	}
	dir := fs.Arg(0)
	o := natspki.Options{Hubs: splitList(hubs), Regions: splitList(regions), Hosts: splitList(hosts), Validity: validity}
	if len(o.Hubs) == 0 {
		return errors.New("iamd pki: --hubs needs at least one hub node")
	}
	o.HTTPS = append(append([]string{}, o.Hubs...), o.Regions...)
	if err := natspki.Generate(dir, o); err != nil {
		return err
	}
	return InitSecrets(filepath.Join(dir, "secrets"))
}
