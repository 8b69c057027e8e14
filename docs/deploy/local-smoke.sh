#!/usr/bin/env bash
# local-smoke.sh: starts local.sh's topology in a temp dir, proves it works
# through a region over HTTPS (verified against topology.json's CA), and
# stops it whatever happens. CI runs it (.ci/run).
#
#   1. a token for the bootstrap admin from eu-west's token endpoint;
#   2. a write through eu-west, relayed over its leaf link to the hub;
#   3. us-east reads that write at least as fresh as its consistency token
#      (it came down us-east's own leaf link), and answers /readyz.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
d=$(mktemp -d)
trap 'bash "$here/local.sh" stop "$d"; rm -rf "$d"' EXIT
trap 'exit 143' TERM INT # the EXIT trap stops the processes then too
bash "$here/local.sh" start "$d"
t=$d/topology.json
cat "$t"
ca=$(jq -r .ca "$t")
eu=$(jq -r '.regions[] | select(.name == "eu-west") | .http' "$t")
us=$(jq -r '.regions[] | select(.name == "us-east") | .http' "$t")
id=$(jq -r .clientId "$(jq -r .bootstrap "$t")")
secret=$(jq -r .clientSecret "$(jq -r .bootstrap "$t")")
c() { curl -fsS --max-time 10 --cacert "$ca" "$@"; }
token=$(c -u "$id:$secret" -d grant_type=client_credentials "$eu/oauth2/token" | jq -er .access_token)
w=$(c -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"name":"smoke"}' "$eu/v1/groups")
ct=$(jq -er .consistencyToken <<<"$w")
gid=$(jq -er .id <<<"$w")
c -H "Authorization: Bearer $token" -H "Consistency-Token: $ct" "$us/v1/groups/$gid" | jq -e '.name == "smoke"' >/dev/null ||
	{ echo "local-smoke: us-east does not show the group written through eu-west" >&2; exit 1; }
c "$us/readyz" | jq -e .ready >/dev/null
echo "local-smoke: ok (token from eu-west, write relayed to the hub, read in us-east at $ct)"
