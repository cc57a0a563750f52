#!/usr/bin/env bash
# certs: sefl-certs as a user runs it, checked with OpenSSL. init makes a CA,
# a server certificate with the right SANs and N client certificates (EC
# P-256, keys 0600, CN = name, signed by the CA, clientAuth / serverAuth);
# it refuses to overwrite a CA; issue adds one client; --expired makes an
# expired one; bad arguments and every limit give one line and exit 2.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

if ! command -v openssl >/dev/null 2>&1; then
    echo "certs: skipped: no openssl command (make deps installs it)"
    echo "0 passed, 0 failed"
    exit 0
fi
if [ ! -x "$BIN/sefl-certs" ]; then
    echo "FAIL - $BIN/sefl-certs is not built"
    echo "0 passed, 1 failed"
    exit 1
fi
sefl_cleanup_on_exit
sefl_tmpdir T
D=$T/a/certs
CERTS=$BIN/sefl-certs

# exits CODE CMD...: CMD exits with CODE and prints exactly one line on stderr.
exits() {
    local code=$1 rc
    shift
    "$@" >/dev/null 2>"$T/err"
    rc=$?
    [ "$rc" = "$code" ] && [ "$(wc -l <"$T/err")" = 1 ]
}
quiet() { "$@" >/dev/null; }
verifies() { openssl verify -CAfile "$D/ca.crt" "$1" >/dev/null 2>&1; }
text() { openssl x509 -in "$1" -noout -text 2>/dev/null; }
mode() { stat -c %a "$1"; }

sefl_check "--help" quiet "$CERTS" --help
sefl_check "init with 3 clients and two extra names (parents made)" \
    quiet "$CERTS" init --dir "$D" --clients 3 --server-name fl.example.org --server-name 10.20.30.40
sefl_check "  CA, server and client files" test -s "$D/ca.crt" -a -s "$D/ca.key" -a -s "$D/server.crt" \
    -a -s "$D/server.key" -a -s "$D/clients/client-0000.crt" -a -s "$D/clients/client-0002.key"
sefl_check "  no client-0003" test ! -e "$D/clients/client-0003.crt"
sefl_check "  keys are 0600" test "$(mode "$D/ca.key")$(mode "$D/server.key")$(mode "$D/clients/client-0001.key")" = 600600600
sefl_check "  keys are EC P-256" bash -c "openssl pkey -in '$D/clients/client-0001.key' -noout -text | grep -q 'ASN1 OID: prime256v1'"
sefl_check "  server certificate verifies against the CA" verifies "$D/server.crt"
sefl_check "  client certificates verify against the CA" verifies "$D/clients/client-0002.crt"
sefl_check "  server SANs: given names first, then localhost and 127.0.0.1" bash -c \
    "openssl x509 -in '$D/server.crt' -noout -ext subjectAltName | grep -q 'DNS:fl.example.org, IP Address:10.20.30.40, DNS:localhost, IP Address:127.0.0.1'"
sefl_check "  server is for TLS Web Server Authentication" bash -c "openssl x509 -in '$D/server.crt' -noout -ext extendedKeyUsage | grep -q 'Server Authentication'"
sefl_check "  client CN is its name, for Client Authentication" bash -c \
    "openssl x509 -in '$D/clients/client-0002.crt' -noout -subject -ext extendedKeyUsage | tr '\n' ' ' | grep -q 'CN = client-0002 .*Client Authentication'"
sefl_check "  the CA is a CA" bash -c "openssl x509 -in '$D/ca.crt' -noout -ext basicConstraints | grep -q 'CA:TRUE'"

before=$(md5sum "$D/ca.crt")
sefl_check "init again refuses (exit 1, one line)" exits 1 "$CERTS" init --dir "$D"
sefl_check "  and says why" grep -q 'refusing to overwrite the project CA' "$T/err"
sefl_check "  the CA is untouched" test "$(md5sum "$D/ca.crt")" = "$before"

sefl_check "issue adds a device" quiet "$CERTS" issue --dir "$D" --name sensor-7
sefl_check "  signed by the existing CA" verifies "$D/clients/sensor-7.crt"
sefl_check "  others untouched" test "$(md5sum "$D/ca.crt")" = "$before"
sefl_check "issue of an existing name refuses" exits 1 "$CERTS" issue --dir "$D" --name sensor-7
sefl_check "issue --expired makes an expired certificate" quiet "$CERTS" issue --dir "$D" --name old --expired
sefl_check "  OpenSSL calls it expired" bash -c "openssl verify -CAfile '$D/ca.crt' '$D/clients/old.crt' 2>&1 | grep -q 'certificate has expired'"
sefl_check "issue without a CA fails" exits 1 "$CERTS" issue --dir "$T/none" --name x

sefl_check "no command: exit 2" exits 2 "$CERTS" --dir "$T/x"
sefl_check "unknown command: exit 2" exits 2 "$CERTS" frobnicate --dir "$T/x"
sefl_check "unknown option: exit 2" exits 2 "$CERTS" init --dir "$T/x" --bogus 1
sefl_check "missing --dir: exit 2" exits 2 "$CERTS" init
sefl_check "issue without --name: exit 2" exits 2 "$CERTS" issue --dir "$D"
sefl_check "--clients limit 100000: 100001 refused" exits 2 "$CERTS" init --dir "$T/x" --clients 100001
sefl_check "--clients -1 refused" exits 2 "$CERTS" init --dir "$T/x" --clients -1
sefl_check "--name of 65 characters refused" exits 2 "$CERTS" issue --dir "$D" --name "$(printf 'a%.0s' {1..65})"
sefl_check "--name with a slash refused" exits 2 "$CERTS" issue --dir "$D" --name ../evil
names=()
for i in $(seq 1 15); do names+=(--server-name "h$i.example"); done
sefl_check "more than 14 --server-name refused" exits 2 "$CERTS" init --dir "$T/x" "${names[@]}"
sefl_check "--server-name that is not a host refused" exits 2 "$CERTS" init --dir "$T/x" --server-name 'a b'
sefl_check "nothing made by refused runs" test ! -e "$T/x"
sefl_summary
