#!/usr/bin/env bash
# tls_openssl: sefl's TLS server as another TLS stack sees it. Starts the
# echo server of sefl-tlsbench (common/conn.c + common/tls.c, the code the
# coordinator runs) with certificates from sefl-certs, and connects with
# `openssl s_client`:
#   - with a client certificate of the project: the handshake completes
#     (TLS 1.2, an ECDHE-ECDSA AEAD suite, the server certificate verified by
#     OpenSSL against the project CA, for the name localhost and the IP
#     127.0.0.1), and the server names the client by its certificate's CN;
#   - each AEAD suite offered can be negotiated;
#   - refused: no client certificate, a certificate of another project,
#     TLS 1.1 (offered by OpenSSL at security level 0 so that it really is
#     sent), a CBC suite, a non-ECDHE suite;
#   - after all that the server still serves, and stops cleanly on SIGTERM.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

if ! command -v openssl >/dev/null 2>&1; then
    echo "tls_openssl: skipped: no openssl command (make deps installs it)"
    echo "0 passed, 0 failed"
    exit 0
fi
for b in sefl-certs sefl-tlsbench; do
    if [ ! -x "$BIN/$b" ]; then
        echo "FAIL - $BIN/$b is not built"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

sefl_cleanup_on_exit
sefl_tmpdir T
C=$T/certs
if ! sefl_make_certs "$C" --clients 1 || ! sefl_make_certs "$T/other" --clients 1; then
    echo "FAIL - sefl-certs init"
    echo "0 passed, 1 failed"
    exit 1
fi
LOG=$T/server.log
"$BIN/sefl-tlsbench" serve --certs "$C" --listen 127.0.0.1:0 2>"$LOG" &
SERVER=$!
sefl_track "$SERVER"
if ! PORT=$(sefl_wait_port "$LOG" "$SERVER" 20); then
    cat "$LOG"
    echo "FAIL - the TLS echo server did not start"
    echo "0 passed, 1 failed"
    exit 1
fi

# s_client ARGS...: one handshake (stdin closed, so it ends right after),
# output in $T/out; returns s_client's status.
s_client() {
    timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$C/ca.crt" \
        -verify_return_error -brief "$@" </dev/null >"$T/out" 2>&1
}
with_cert() {
    s_client -cert "$C/clients/client-0000.crt" -key "$C/clients/client-0000.key" "$@"
}
closes() { grep -c ' close ' "$LOG"; }
fails() { ! "$@"; }
negotiates() { with_cert -cipher "$1" && grep -q "Ciphersuite: $1" "$T/out"; }

# A refusal is the server's: the connection reached it and it closed the
# connection in the handshake with the reason given (an extended regex).
refused_by_server() {
    local before=$1 why=$2
    sefl_wait_log "$LOG" ' close ' 10 $((before + 1)) &&
        tail -n 1 "$LOG" | grep -qE "TLS handshake failed: .*($why)"
}

established() {
    grep -q 'CONNECTION ESTABLISHED' "$T/out" && grep -q 'Verification: OK' "$T/out"
}

n=$(closes)
sefl_check "handshake with a project client certificate" with_cert -verify_hostname localhost
sefl_check "  TLS 1.2 with an ECDHE-ECDSA AEAD suite" \
    grep -qE 'Ciphersuite: ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)' "$T/out"
sefl_check "  OpenSSL verified the server for localhost" established
sefl_check "  the server knows the client by its CN" sefl_wait_log "$LOG" 'open client-0000 ' 10

sefl_check "server certificate valid for IP 127.0.0.1 (iPAddress SAN)" with_cert -verify_ip 127.0.0.1
for suite in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
    sefl_check "suite $suite negotiated" negotiates "$suite"
done

n=$(closes)
sefl_check "no client certificate: s_client fails" fails s_client
sefl_check "  refused by the server" refused_by_server "$n" 'No client certification'

n=$(closes)
sefl_check "certificate of another project: s_client fails" fails s_client \
    -cert "$T/other/clients/client-0000.crt" -key "$T/other/clients/client-0000.key"
sefl_check "  refused by the server" refused_by_server "$n" 'certificate verify failed'

n=$(closes)
sefl_check "TLS 1.1: s_client -tls1_1 fails" fails with_cert -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
sefl_check "  refused by the server" refused_by_server "$n" 'protocol not within min/max'

n=$(closes)
sefl_check "CBC suite ECDHE-ECDSA-AES128-SHA256 fails" fails with_cert -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256
sefl_check "  refused by the server" refused_by_server "$n" 'no ciphersuites in common'

n=$(closes)
sefl_check "non-ECDHE suite AES128-GCM-SHA256 fails" fails with_cert -tls1_2 -cipher AES128-GCM-SHA256
sefl_check "  refused by the server" refused_by_server "$n" 'no ciphersuites in common'

sefl_check "the server still serves a good client" with_cert
sefl_check "the server is still running" kill -0 "$SERVER"
kill -TERM "$SERVER"
sefl_check "it stops cleanly on SIGTERM" sefl_wait_exit "$SERVER" 20
sefl_check "  and says so" grep -q 'INFO stopped' "$LOG"
sefl_summary
