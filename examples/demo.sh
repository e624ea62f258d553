#!/usr/bin/env bash
# Installs what is missing, builds hotsock, and starts the demo (examples/demo.lua) in the
# foreground. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup demo
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOTSOCK_BUILD_TESTS=OFF \
  -DHOTSOCK_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bash examples/demo-cert.sh
cat <<'TXT'

hotsock demo — every shipped behaviour, on 127.0.0.1:
  echo      tcp 7000, udp 7000, unix /tmp/hotsock-echo.sock
              printf 'hello\n' | nc -N 127.0.0.1 7000
              printf 'hello' | nc -u -w1 127.0.0.1 7000
              printf 'hello\n' | nc -N -U /tmp/hotsock-echo.sock
  greeting  tcp 7001 (raw, the tutorial client's framing), tcp 7002 (line, for nc/telnet)
              nc 127.0.0.1 7002        then type a name, and exit
  upload    tcp 7003, files land in /tmp/hotsock-files
              lua5.4 examples/upload_client.lua README.md
  udp_ack   udp 7004 answers every datagram with 好的
              printf 'hi' | nc -u -w1 127.0.0.1 7004
  hear_me   tcp 7005 answers "can you hear me?" with Yes, then closes
              lua5.4 examples/hear_me_client.lua
              printf 'can you hear me?' | nc 127.0.0.1 7005
  chat      tcp 7006: a chat room across every worker (publish/subscribe + broadcast)
              nc 127.0.0.1 7006        in two terminals: a nickname first, then talk
  webchat   tcp 8081: a browser chat over WebSocket, across every worker
              open http://127.0.0.1:8081/ in two browser windows, a name in each, then talk
  http      tcp 8080: the static site of examples/www, GET /hello, POST /echo, PUT /upload/NAME
            and https 8443 (tls, a self-signed certificate made on first run)
              open http://127.0.0.1:8080/ in a browser
              curl http://127.0.0.1:8080/hello
              curl --cacert /tmp/hotsock-demo-tls/cert.pem https://127.0.0.1:8443/hello
              curl -d hi http://127.0.0.1:8080/echo
              curl -T README.md http://127.0.0.1:8080/upload/README.md
Reload after editing a script: build/hotsock reload --config examples/demo.lua
(or kill -HUP <pid shown below); build/hotsock stats --config examples/demo.lua shows it.
Stop: Ctrl-C.

TXT
exec build/hotsock serve --config examples/demo.lua
