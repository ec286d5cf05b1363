#!/bin/sh
# realpki.sh DIR: makes, with a real step-ca (smallstep v0.30.2, built into
# /var/cache/tlsdock-e2e/bin by install-pki-tools.sh, which this runs
# first), the files of agent's TestRealPKICRL: the root as ca.pem, a server
# certificate with its intermediate, clients alice (revoked) and bob, and
# the CRL step-ca signs with its intermediate. Then:
#   TLSDOCK_REAL_PKI_DIR=DIR go test ./agent -run TestRealPKICRL -v
set -eu
BIN=${STEP_BIN:-/var/cache/tlsdock-e2e/bin}
STEP_BIN=$BIN sh "$(dirname "$0")/install-pki-tools.sh"
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export STEPPATH="$OUT/step"
rm -rf "$STEPPATH"
PW="$OUT/pw"
echo "test-password" >"$PW"
ADDR=127.0.0.1:${STEP_PORT:-19443}
"$BIN/step" ca init --name "tlsdock test" --dns localhost --address "$ADDR" \
	--provisioner admin --password-file "$PW" --provisioner-password-file "$PW" \
	--deployment-type standalone >/dev/null
python3 - "$STEPPATH/config/ca.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["crl"] = {"enabled": True, "generateOnRevoke": True, "cacheDuration": "24h"}
json.dump(c, open(p, "w"), indent=2)
PY
"$BIN/step-ca" --password-file "$PW" "$STEPPATH/config/ca.json" >"$OUT/step-ca.log" 2>&1 &
CA=$!
trap 'kill $CA' EXIT
for _ in $(seq 50); do
	"$BIN/step" ca health >/dev/null 2>&1 && break
	sleep 0.2
done
cert() { "$BIN/step" ca certificate "$@" --provisioner admin --provisioner-password-file "$PW" -f >/dev/null 2>&1; }
cert localhost "$OUT/server-cert.pem" "$OUT/server-key.pem" --san localhost --san 127.0.0.1
cert alice "$OUT/alice.crt" "$OUT/alice.key"
cert bob "$OUT/bob.crt" "$OUT/bob.key"
cp "$STEPPATH/certs/root_ca.crt" "$OUT/ca.pem"
"$BIN/step" ca revoke --cert "$OUT/alice.crt" --key "$OUT/alice.key" >/dev/null 2>&1
curl -sf --cacert "$OUT/ca.pem" --resolve "localhost:${ADDR##*:}:127.0.0.1" "https://localhost:${ADDR##*:}/crl" -o "$OUT/crl.der"
echo "made $OUT (CRL $(wc -c <"$OUT/crl.der") bytes)"
