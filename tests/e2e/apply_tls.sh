#!/usr/bin/env bash
# Acceptance (issue 9): TLS through kamal-proxy with a custom certificate:
# `proxy: ssl: {certificate_pem: CERT_PEM, private_key_pem: KEY_PEM}` from
# the secrets, a certificate made here with openssl; every web host answers
# https with it (`curl --cacert`), and plain http is redirected.
# The key's body is a canary: in no output, in no process's argv.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
. "$(dirname "$0")/apply_lib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }

NAME=app.lab.test
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$NAME" \
	-addext "subjectAltName=DNS:$NAME" -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
APPLY_CANARIES+=("$(sed -n 5p "$T/key.pem")")
PC_ROOT_EXTRA=$(printf 'proxy:\n  host: %s\n  ssl:\n    certificate_pem: CERT_PEM\n    private_key_pem: KEY_PEM\n  run:\n    registry: %s\n    repository: kamal-proxy\n    version: v0.9.2\ndeploy_timeout: 10\nreadiness_delay: 0\n' "$NAME" "$LAB_REGISTRY")
A0=$(plan_commit "apply_tls: v1")
A=$(lab_commit "apply_tls: the certificate in the secrets" bash -c \
	'printf "CERT_PEM='\''%s'\''\nKEY_PEM='\''%s'\''\n" "$(cat "$0")" "$(cat "$1")" >>.kamal/secrets' "$T/cert.pem" "$T/key.pem")
[ -n "$A0" ] && lab_tag v1 "$A"
apply_run first apply --trusted --yes
apply_expect_rc first 0
for ((i = 1; i < N; i++)); do
	ip=$(lab__host_ip "$i")
	got=""
	for _ in $(seq 1 20); do
		got=$(curl -s --max-time 5 --cacert "$T/cert.pem" --resolve "$NAME:443:$ip" "https://$NAME/" || true)
		[ "$got" = v1 ] && break
		sleep 0.25
	done
	[ "$got" = v1 ] || fail "host $i: https answers '$got', want v1"
	if curl -s --max-time 5 --resolve "$NAME:443:$ip" "https://$NAME/" >/dev/null 2>&1; then
		fail "host $i: the certificate is trusted without --cacert"
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $NAME" "http://$ip/" || true)
	case $code in 30[178]) ;; *) fail "host $i: http gives $code, want a redirect to https" ;; esac
done
plan_run after
plan_expect_rc after 0
echo "apply_tls: ok"
