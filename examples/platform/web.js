#!/usr/bin/env node
// A plain HTTP worker in Node.js, standard library only, for infantd.
//
// - Serves on the listen socket infantd hands over (systemd style: fd 3, with
//   LISTEN_FDS and LISTEN_PID), shared by every worker of the cluster; without
//   one (run by hand) it listens on 127.0.0.1:8080.
// - On SIGTERM it drains: stops accepting, finishes the requests in flight,
//   then exits 0.
// - Readiness: Node's standard library has no Unix datagram sockets, so it
//   cannot send READY=1 on NOTIFY_SOCKET. Use `ready = "grace"` (or "spawn"):
//   the socket is bound by infantd, so a connection that comes before the
//   worker accepts waits in the socket's backlog and is not refused.
//
//   [program.web]
//   kind = "cluster"
//   count = 2
//   listen = ["tcp://127.0.0.1:8080"]
//   command = ["node", "examples/platform/web.js"]
//   ready = "grace"
"use strict";

const http = require("node:http");

const SD_LISTEN_FDS_START = 3;
const delayMs = Number(process.env.WEB_DELAY_MS || "10");

const server = http.createServer((request, response) => {
  // A little work, so that a drain has requests in flight to finish.
  setTimeout(() => {
    const body = `hello from ${process.pid}\n`;
    response.writeHead(200, {
      "Content-Type": "text/plain",
      "Content-Length": Buffer.byteLength(body),
      // One request per connection: a draining worker holds no idle ones.
      Connection: "close",
    });
    response.end(body);
  }, delayMs);
});

const activated =
  process.env.LISTEN_PID === String(process.pid) &&
  Number(process.env.LISTEN_FDS || "0") >= 1;
if (activated) {
  server.listen({ fd: SD_LISTEN_FDS_START });
} else {
  server.listen(8080, "127.0.0.1");
}

process.on("SIGTERM", () => {
  // close() stops accepting and calls back once the open connections ended.
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
