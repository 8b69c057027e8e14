#!/usr/bin/env bash
# local.sh: the topology of docs/deploy/README.md on one machine, secured as
# production is: 3 hub nodes (hub-1..3) and the regions eu-west and us-east
# on 127.0.0.1, free ports, HTTPS on every process, TLS and credentials on
# every NATS link (nats-security.md).
#
#   local.sh start DIR   build iamd, generate the PKI and secrets, start all
#                        five, wait until each answers /readyz, write
#                        DIR/topology.json
#   local.sh stop DIR    SIGTERM every process, SIGKILL what is left after 30s
#
# Under DIR (0700), laid out as the production hosts would be:
#   bin/iamd             the binary
#   pki/                 the operator's copy: `iamd pki` output (CAs with keys,
#                        every certificate and nkey, the hub secrets)
#   <name>/              one process's "host": only the files it needs
#     data/              its --data (0700)
#     nats/ tls/         its --nats-tls-dir, its --tls-cert/--tls-key
#     secrets/           a hub node's --secrets (the same on every node)
#     log-keys.pub.json  a region's --log-keys
#     addr.json          its listeners, written by iamd once ready
#   <name>.log <name>.pid
#   topology.json        {"ca", "bootstrap", "hub": [...], "regions": [...]}
#
# Needs bash, go, curl, jq and python3 (to ask the OS for the 4 ports that
# must be known before anything starts: the hub's 3 route ports, which every
# node lists, and eu-west's HTTPS port, the issuer). Every other listener
# binds port 0 and iamd reports it (--addr-file).
set -euo pipefail
umask 077 # logs (the bootstrap admin's secret is printed there), pids, everything under DIR

HUBS=(hub-1 hub-2 hub-3)
REGIONS=(eu-west us-east)
START_TIMEOUT=${LOCAL_START_TIMEOUT:-120} # seconds, for the whole start
STOP_TIMEOUT=${LOCAL_STOP_TIMEOUT:-30}    # seconds before SIGKILL

usage() {
	echo "usage: $0 start|stop DIR" >&2
	exit 2
}

die() {
	echo "local.sh: $*" >&2
	exit 1
}

[ $# -eq 2 ] || usage
cmd=$1
if [ "$cmd" = stop ] && [ ! -d "$2" ]; then
	exit 0 # nothing started there
fi
mkdir -p "$2"
DIR=$(cd "$2" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$DIR/bin/iamd

# alive PID: the process PID runs and is one of ours (its command line names
# DIR), so a recycled pid is never signalled.
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/cmdline" ]; then
		tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$DIR/"
	else # no /proc (macOS): ps; a zombie's is "<defunct>"
		ps -p "$1" -o args= 2>/dev/null | grep -qF -- "$DIR/"
	fi
}

pids() {
	local f
	for f in "$DIR"/*.pid; do
		[ -e "$f" ] && cat "$f"
	done
	return 0
}

stop_all() {
	local pid left deadline
	for pid in $(pids); do
		alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	while :; do
		left=()
		for pid in $(pids); do
			alive "$pid" && left+=("$pid")
		done
		[ ${#left[@]} -eq 0 ] && break
		if [ $SECONDS -ge $deadline ]; then
			echo "local.sh: still running after ${STOP_TIMEOUT}s, SIGKILL: ${left[*]}" >&2
			kill -KILL "${left[@]}" 2>/dev/null || true
			sleep 0.5
			break
		fi
		sleep 0.2
	done
	rm -f "$DIR"/*.pid "$DIR/topology.json"
}

# fail NAME MESSAGE: report, show NAME's log tail, stop everything started.
fail() {
	echo "local.sh: $1: $2" >&2
	if [ -f "$DIR/$1.log" ]; then
		echo "--- last lines of $DIR/$1.log:" >&2
		tail -n 30 "$DIR/$1.log" >&2
		echo "---" >&2
	fi
	stop_all
	exit 1
}

# install SRC DST: copy one file to a process's "host", 0600 in 0700 dirs.
install_file() {
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2"
	chmod 600 "$2"
}

# private DIR...: make directories 0700.
private() {
	mkdir -p "$@"
	chmod 700 "$@"
}

# launch NAME ARGS...: start iamd in the background, log and pid beside.
launch() {
	local name=$1
	shift
	rm -f "$DIR/$name/addr.json"
	"$BIN" "$@" --addr-file "$DIR/$name/addr.json" </dev/null >"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
}

# wait_ready NAME: until NAME has written its addr.json and answers /readyz
# over HTTPS, verified against the HTTPS CA; fails when it exits or at the
# deadline.
wait_ready() {
	local name=$1 pid url
	pid=$(cat "$DIR/$name.pid")
	while [ ! -s "$DIR/$name/addr.json" ]; do
		alive "$pid" || fail "$name" "exited during start"
		[ $SECONDS -lt $deadline ] || fail "$name" "not started within ${START_TIMEOUT}s"
		sleep 0.2
	done
	url=$(jq -r .http "$DIR/$name/addr.json")
	until curl -fsS --max-time 5 --cacert "$DIR/pki/https-ca.pem" "$url/readyz" >/dev/null 2>&1; do
		alive "$pid" || fail "$name" "exited during start"
		[ $SECONDS -lt $deadline ] || fail "$name" "$url/readyz not ready within ${START_TIMEOUT}s: $(curl -sS --max-time 5 --cacert "$DIR/pki/https-ca.pem" "$url/readyz" 2>&1 | head -c 300)"
		sleep 0.2
	done
}

start() {
	local pid name h i port
	for pid in $(pids); do
		alive "$pid" && die "$DIR already runs a topology (pid $pid): run '$0 stop $DIR' first"
	done
	rm -f "$DIR"/*.pid "$DIR/topology.json"
	for tool in go curl jq python3; do
		command -v "$tool" >/dev/null || die "$tool is needed"
	done
	chmod 700 "$DIR"
	# Whatever fails from here stops what was started: no half topology.
	trap 'rc=$?; if [ $rc -ne 0 ]; then echo "local.sh: start failed, stopping what started" >&2; stop_all; fi' EXIT

	echo "local.sh: building iamd" >&2
	(cd "$REPO" && go build -o "$BIN" ./cmd/iamd)
	deadline=$((SECONDS + START_TIMEOUT)) # from here: the build is not bounded

	# 1. The PKI and the hub's secrets, as an operator makes them once.
	local hubs regions
	hubs=$(IFS=,; echo "${HUBS[*]}")
	regions=$(IFS=,; echo "${REGIONS[*]}")
	"$BIN" pki --hubs "$hubs" --regions "$regions" "$DIR/pki"

	# 2. Ports: the route ports (every node lists them all) and the issuer's.
	local ports
	read -r -a ports < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss:
    s.close()')
	local routes="" issuer="https://127.0.0.1:${ports[3]}"
	for i in 0 1 2; do
		routes+="${routes:+,}nats-route://127.0.0.1:${ports[$i]}"
	done

	# 3. Each hub node's host: its own NATS certificates, the CAs, the
	#    route password and the regions' public nkeys; its HTTPS pair; the
	#    shared secrets. Then all three at once (the stream needs a quorum).
	for i in 0 1 2; do
		name=${HUBS[$i]}
		h=$DIR/$name
		private "$h" "$h/data"
		for f in route-ca.pem leaf-ca.pem client-ca.pem route.pass hub/"$name"/{route,leaf,client}.{pem,key}; do
			install_file "$DIR/pki/$f" "$h/nats/$f"
		done
		for r in "${REGIONS[@]}"; do
			install_file "$DIR/pki/region/$r/leaf.pub" "$h/nats/region/$r/leaf.pub"
		done
		install_file "$DIR/pki/https/$name.pem" "$h/tls/tls.crt"
		install_file "$DIR/pki/https/$name.key" "$h/tls/tls.key"
		if [ ! -d "$h/secrets" ]; then # kept across restarts, like the data
			private "$h/secrets"
			cp -p "$DIR/pki/secrets/"* "$h/secrets/"
		fi
		chmod -R go-rwx "$h/nats" "$h/tls"
		local boot=--bootstrap=false
		[ "$i" -eq 0 ] && boot=--bootstrap
		launch "$name" hub --nats-name "$name" --data "$h/data" --secrets "$h/secrets" --nats-tls-dir "$h/nats" \
			--http 127.0.0.1:0 --tls-cert "$h/tls/tls.crt" --tls-key "$h/tls/tls.key" \
			--nats-listen 127.0.0.1:-1 --cluster "127.0.0.1:${ports[$i]}" --routes "$routes" \
			--leaf-listen 127.0.0.1:-1 --regions "$name" --issuer "$issuer" $boot
	done
	echo "local.sh: waiting for the hub" >&2
	for name in "${HUBS[@]}"; do
		wait_ready "$name"
	done

	# 4. Each region's host: its leaf certificate and nkey seed, the leaf
	#    CA, its HTTPS pair and the log's public keys.
	local hubleaf=""
	for name in "${HUBS[@]}"; do
		hubleaf+="${hubleaf:+,}nats-leaf://$(jq -r .leaf "$DIR/$name/addr.json" | sed 's#^[a-z-]*://##')"
	done
	for name in "${REGIONS[@]}"; do
		h=$DIR/$name
		private "$h" "$h/data"
		for f in leaf-ca.pem region/"$name"/leaf.{pem,key,seed}; do
			install_file "$DIR/pki/$f" "$h/nats/$f"
		done
		install_file "$DIR/pki/https/$name.pem" "$h/tls/tls.crt"
		install_file "$DIR/pki/https/$name.key" "$h/tls/tls.key"
		install_file "$DIR/pki/secrets/log-keys.pub.json" "$h/log-keys.pub.json"
		chmod -R go-rwx "$h/nats" "$h/tls"
		port=0
		[ "$name" = eu-west ] && port=${ports[3]}
		launch "$name" region --region "$name" --hub-leaf "$hubleaf" --data "$h/data" --nats-tls-dir "$h/nats" \
			--http "127.0.0.1:$port" --tls-cert "$h/tls/tls.crt" --tls-key "$h/tls/tls.key" \
			--issuer "$issuer" --log-keys "$h/log-keys.pub.json"
	done
	echo "local.sh: waiting for the regions" >&2
	for name in "${REGIONS[@]}"; do
		wait_ready "$name"
	done

	# 5. topology.json, from what each process reported.
	local hubjson="[]" regjson="[]"
	for name in "${HUBS[@]}"; do
		hubjson=$(jq --arg name "$name" --argjson acc "$hubjson" \
			'$acc + [{name: $name, pid, http, nats, cluster, leaf} | with_entries(select(.value != null))]' "$DIR/$name/addr.json")
	done
	for name in "${REGIONS[@]}"; do
		regjson=$(jq --arg name "$name" --arg creds "$DIR/$name/nats/region/$name/leaf.seed" --argjson acc "$regjson" \
			'$acc + [{name: $name, pid, http, nats, creds: $creds} | with_entries(select(.value != null))]' "$DIR/$name/addr.json")
	done
	local bootstrap=$DIR/${HUBS[0]}/data/bootstrap-admin.json
	[ -f "$bootstrap" ] || echo "local.sh: warning: no $bootstrap (the log was not empty: an earlier start made the admin)" >&2
	jq -n --arg ca "$DIR/pki/https-ca.pem" --arg bootstrap "$bootstrap" --argjson hub "$hubjson" --argjson regions "$regjson" \
		'{ca: $ca, bootstrap: $bootstrap, hub: $hub, regions: $regions}' >"$DIR/topology.json.tmp"
	mv "$DIR/topology.json.tmp" "$DIR/topology.json"
	trap - EXIT
	echo "local.sh: ready in $SECONDS s: $DIR/topology.json (issuer $issuer)" >&2
}

case $cmd in
start) start ;;
stop) stop_all ;;
*) usage ;;
esac
