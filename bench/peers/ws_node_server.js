// Node's `ws` server (npm ws), the peer of bench/ws.sh: echoes every message as it came; a
// text message starting with "bcast:" goes to every open client instead. No compression.
//   node bench/peers/ws_node_server.js PORT     (NODE_PATH must reach the ws package)
"use strict";
const { WebSocketServer, WebSocket } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2]), perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.length > 6 && data.toString("latin1", 0, 6) === "bcast:") {
      for (const c of wss.clients) if (c.readyState === WebSocket.OPEN) c.send(data, { binary: false });
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});
wss.on("listening", () => console.log("ready"));
