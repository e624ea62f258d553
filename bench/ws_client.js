// The WebSocket load client of bench/ws.sh (Node, npm ws), the same for every server:
//   node bench/ws_client.js echo  URL CONNS SIZE SECONDS   each connection sends a binary
//        message of SIZE bytes and waits for its echo (ping-pong); prints "msgs/s N"
//   node bench/ws_client.js bcast URL CONNS SECONDS        CONNS connections; one of them
//        sends "bcast:" + 58 bytes, waits until every connection got it, sends the next;
//        prints "deliveries/s N"
//   node bench/ws_client.js idle  URL CONNS SECONDS        opens CONNS connections, echoes
//        64 B once on each, prints "ready", holds them SECONDS
"use strict";
const WebSocket = require("ws");
const [mode, url, connsArg, a4, a5] = process.argv.slice(2);
const conns = Number(connsArg);

function open(n) {
  return Promise.all(Array.from({ length: n }, () => new Promise((ok, fail) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on("open", () => ok(ws));
    ws.on("error", fail);
  })));
}

async function echo(size, seconds) {
  const all = await open(conns);
  const msg = Buffer.alloc(size, 120);
  let count = 0, running = true;
  for (const ws of all) {
    ws.on("message", () => { count++; if (running) ws.send(msg); });
    ws.send(msg);
  }
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  const c0 = count, t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const n = count - c0, dt = Number(process.hrtime.bigint() - t0) / 1e9;
  running = false;
  console.log(`msgs/s ${Math.round(n / dt)}`);
  for (const ws of all) ws.terminate();
}

async function bcast(seconds) {
  const all = await open(conns);
  const msg = "bcast:" + "x".repeat(58);
  let got = 0, deliveries = 0, running = true;
  const sender = all[0];
  for (const ws of all) {
    ws.on("message", () => {
      deliveries++;
      if (++got === conns && running) { got = 0; sender.send(msg); }
    });
  }
  sender.send(msg);
  await new Promise((r) => setTimeout(r, 1000));
  const d0 = deliveries, t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const n = deliveries - d0, dt = Number(process.hrtime.bigint() - t0) / 1e9;
  running = false;
  console.log(`deliveries/s ${Math.round(n / dt)}`);
  for (const ws of all) ws.terminate();
}

async function idle(seconds) {
  const all = [];
  for (let i = 0; i < conns; i += 200) all.push(...await open(Math.min(200, conns - i)));
  await Promise.all(all.map((ws) => new Promise((r) => { ws.once("message", r); ws.send(Buffer.alloc(64)); })));
  console.log("ready");
  await new Promise((r) => setTimeout(r, seconds * 1000));
  for (const ws of all) ws.terminate();
}

(mode === "echo" ? echo(Number(a4), Number(a5)) : mode === "bcast" ? bcast(Number(a4)) : idle(Number(a4)))
  .catch((e) => { console.error(e.message); process.exit(1); });
