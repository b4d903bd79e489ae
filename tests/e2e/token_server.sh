#!/bin/sh
# A test-only Bearer token endpoint for a docker-registry configured with
# `auth: token:`. It runs as a CGI program under `busybox httpd` bound to
# 127.0.0.1 (started and stopped by tests/e2e/t_registry.c, which also turns on
# httpd's Basic auth for the cgi-bin directory, so a token is only minted for
# the right user and password).
#
# It mints a JWT signed (RS256, openssl CLI) with the key whose self-signed
# certificate is the registry's rootcertbundle; the certificate travels in the
# x5c header. Settings come from token.env one directory up (KEY, CERT, ISSUER,
# SERVICE, LOG); every request appends one line to LOG so the test can count
# token requests.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/token.env"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# query: service=...&scope=repository%3Aoptimus%3Apull
scope=""
IFS='&'
for kv in ${QUERY_STRING:-}; do
	case "$kv" in
	scope=*) scope=$(busybox httpd -d "${kv#scope=}") ;;
	esac
done
unset IFS
echo "token scope=$scope" >>"$LOG"

name=""; actions=""
case "$scope" in
repository:*:*)
	rest=${scope#repository:}
	name=${rest%:*}
	actions=${rest##*:}
	;;
esac
access="[]"
if [ -n "$name" ]; then
	acts=$(printf '%s' "$actions" | sed 's/[^a-z,*]//g; s/\([^,]*\)/"\1"/g')
	access="[{\"type\":\"repository\",\"name\":\"$name\",\"actions\":[$acts]}]"
fi

now=$(date +%s)
x5c=$(openssl x509 -in "$CERT" -outform DER | openssl base64 -A)
header=$(printf '{"typ":"JWT","alg":"RS256","x5c":["%s"]}' "$x5c" | b64url)
payload=$(printf '{"iss":"%s","sub":"tester","aud":"%s","exp":%d,"nbf":%d,"iat":%d,"jti":"%s","access":%s}' \
	"$ISSUER" "$SERVICE" $((now + 300)) $((now - 10)) "$now" "$now-$$" "$access" | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$KEY" | b64url)

printf 'Content-Type: application/json\r\n\r\n'
printf '{"token":"%s.%s.%s","expires_in":300,"issued_at":"%s"}\n' "$header" "$payload" "$sig" \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)"
