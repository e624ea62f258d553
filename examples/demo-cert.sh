#!/usr/bin/env bash
# Makes the demo's self-signed certificate (for https://127.0.0.1:8443/) on first run; later
# runs keep it. demo.sh calls this; so does the spec that checks the demo config.
set -euo pipefail
dir=/tmp/hotsock-demo-tls
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
  exit 0
fi
mkdir -p "$dir" && chmod 700 "$dir" # /tmp exists: only this one is made
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
  -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
echo "made a self-signed certificate for the demo in $dir"
