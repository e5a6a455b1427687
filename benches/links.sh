#!/usr/bin/env bash
# Links benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Two test hosts (own systemd --user, rootless podman, own network namespace, the router image
# chosen as benches/lib.sh says, the stand-in by default): A accepts links, B links to A with a
# Link + Secret made as `skupper link generate` makes them (client certificate signed by A's
# skupper-site-ca, CN = B's site name). Prints, as medians over several runs:
#   - `vansite link create` (the command: parse, TLS check of A's router, files, live management);
#   - from the start of `vansite link create` until `vansite link status` reports the link
#     connected (what a person waits for);
#   - grant server redemptions per second on loopback (benches/grants.sh, run at the end; its
#     line of ratios is this benchmark's last line, links having no ratio of their own).
# The machine is shared and noisy: compare figures of one run, not across runs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
a=lkba
b=lkbb
runs=${RUNS:-7}

bench_prepare
trap '"$T" down "$a" "$b" >/dev/null 2>&1 || true' EXIT
bench_up "$a" "$b"
for host in "$a" "$b"; do bench_load_image "$host"; done
bench_describe_image "$a"
a_addr=$("$T" addr "$a")
"$T" run "$a" -- "$vansite" init --name west --enable-link-access --host "$a_addr" --router-image "$router_image" >/dev/null
"$T" run "$b" -- "$vansite" init --name east --router-image "$router_image" >/dev/null

# The Link + Secret for B, signed by A's site CA.
work=$(mktemp -d)
trap 'rm -rf "$work"; "$T" down "$a" "$b" >/dev/null 2>&1 || true' EXIT
ca=$("$T" run "$a" -- sh -c 'echo $HOME')/.local/share/vansite/default/runtime/issuers/skupper-site-ca
openssl ecparam -genkey -name prime256v1 -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$work/tls.key"
openssl req -new -key "$work/tls.key" -subj /CN=east -out "$work/client.csr"
openssl x509 -req -in "$work/client.csr" -CA "$ca/tls.crt" -CAkey "$ca/tls.key" -CAcreateserial \
    -CAserial "$work/ca.srl" -days 30 -out "$work/tls.crt" \
    -extfile <(printf 'extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n') 2>/dev/null
ports=$("$T" run "$a" -- "$vansite" status --output json)
port_of() { echo "$ports" | tr -d '\n ' | grep -o "\"role\":\"$1\",\"port\":[0-9]*" | grep -o '[0-9]*$'; }
b64() { base64 -w0 "$1"; }
cat > "$work/link.yaml" <<EOF
---
apiVersion: v1
kind: Secret
metadata:
  name: link-west
type: kubernetes.io/tls
data:
  ca.crt: $(b64 "$ca/tls.crt")
  tls.crt: $(b64 "$work/tls.crt")
  tls.key: $(b64 "$work/tls.key")
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata:
  name: link-west
spec:
  tlsCredentials: link-west
  cost: 1
  endpoints:
  - {name: inter-router, host: $a_addr, port: "$(port_of inter-router)", group: skupper-router}
  - {name: edge, host: $a_addr, port: "$(port_of edge)", group: skupper-router}
EOF
"$T" run "$b" -- sh -c 'cat > link.yaml' < "$work/link.yaml"

# Everything is timed inside B, so that entering the host (nsenter) is not counted.
bench_in_host "$b" "$vansite" "$runs" <<'INNER'
set -euo pipefail
vansite=$1 runs=$2
connected() { "$vansite" link status link-west --output json | tr -d ' \n' | grep -q '"connected":true'; }
: > create.ns
: > connected.ns
for ((i = 0; i < runs; i++)); do
    t0=$(now)
    "$vansite" link create link.yaml >/dev/null
    t1=$(now)
    until connected; do sleep 0.02; done
    t2=$(now)
    echo $((t1 - t0)) >> create.ns
    echo $((t2 - t0)) >> connected.ns
    "$vansite" link delete link-west >/dev/null
done
echo "vansite link create (command):       $(ms "$(median < create.ns)") (median of $runs)"
echo "link create until link connected:    $(ms "$(median < connected.ns)") (median of $runs, no router restart)"
INNER

# Grant server redemptions per second on loopback, in the same run.
"$bench_root/benches/grants.sh"
