#!/usr/bin/env python3
"""Hostile clients of a grant server, for benches/grants.sh: SLOW connections that finish the
TLS handshake, send a redemption's head (Content-Length: 24) and never the body, and IDLE plain
TCP connections that send nothing. Each one the server closes is opened again at once (a
persistent attacker). Prints "ready" when all are open, and on SIGTERM prints
"<opened> <closed by the server>" and exits."""

import argparse
import resource
import selectors
import signal
import socket
import ssl
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--path", required=True)
parser.add_argument("--ca", required=True)
parser.add_argument("--slow", type=int, default=1100)
parser.add_argument("--idle", type=int, default=1100)
args = parser.parse_args()

_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

context = ssl.create_default_context(cafile=args.ca)
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.check_hostname = False
head = (
    f"POST {args.path} HTTP/1.1\r\nHost: grants\r\nname: x\r\nsubject: x\r\n"
    "Content-Length: 24\r\n\r\n"
).encode()
selector = selectors.DefaultSelector()
opened = closed = 0


def open_one(slow):
    global opened
    while True:
        try:
            raw = socket.create_connection(("127.0.0.1", args.port), timeout=10)
            if slow:
                conn = context.wrap_socket(raw)
                conn.sendall(head)
            else:
                conn = raw
            break
        except OSError:
            continue  # closed during the handshake to make room: try again
    conn.setblocking(False)
    selector.register(conn, selectors.EVENT_READ, slow)
    opened += 1


stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
for _ in range(args.slow):
    open_one(True)
for _ in range(args.idle):
    open_one(False)
print("ready", flush=True)
while not stop:
    for key, _ in selector.select(timeout=0.2):
        conn, slow = key.fileobj, key.data
        try:
            data = conn.recv(4096)
        except ssl.SSLWantReadError:
            continue
        except OSError:
            data = b""
        if not data:
            selector.unregister(conn)
            conn.close()
            closed += 1
            if not stop:
                open_one(slow)
print(opened, closed, flush=True)
sys.exit(0)
