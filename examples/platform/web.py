#!/usr/bin/env python3
"""A plain HTTP worker in Python, standard library only, for infantd.

- Serves on the listen socket infantd hands over (systemd style: fd 3, with
  LISTEN_FDS and LISTEN_PID), shared by every worker of the cluster; without one
  (run by hand) it binds 127.0.0.1:8080.
- Reports readiness with READY=1 (and a STATUS= line) on NOTIFY_SOCKET when it
  is set: `ready = "notify"` in the program's config gives each instance its own.
- On SIGTERM it drains: stops accepting, finishes the requests in flight, exits 0.

    [program.web]
    kind = "cluster"
    count = 2
    listen = ["tcp://127.0.0.1:8080"]
    command = ["python3", "examples/platform/web.py"]
    ready = "notify"
"""

import http.server
import os
import signal
import socket
import threading
import time

SD_LISTEN_FDS_START = 3


def notify(message):
    """Sends `message` (lines like READY=1) to NOTIFY_SOCKET, if there is one."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), path)


def listen_socket():
    """The first socket passed with LISTEN_FDS, or a fresh one bound by hand."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
        return socket.socket(fileno=SD_LISTEN_FDS_START)
    sock = socket.create_server(("127.0.0.1", 8080))
    return sock


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        # A little work, so that a drain has requests in flight to finish.
        time.sleep(float(os.environ.get("WEB_DELAY", "0.01")))
        body = f"hello from {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        # One request per connection: a draining worker holds no idle ones.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # quiet


class Server(http.server.ThreadingHTTPServer):
    # Draining joins the handler threads: finish what was accepted.
    daemon_threads = False
    block_on_close = True


def main():
    server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listen_socket()
    server.server_address = server.socket.getsockname()

    def drain(signum, frame):
        notify("STOPPING=1\nSTATUS=draining")
        # shutdown() waits for serve_forever to return: not from its own thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, drain)
    notify(f"READY=1\nSTATUS=serving as {os.getpid()}")
    server.serve_forever(poll_interval=0.05)
    server.server_close()  # joins the requests in flight


if __name__ == "__main__":
    main()
