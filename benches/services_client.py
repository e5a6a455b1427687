"""Load for benches/services.sh (run as root inside a test host's network namespace).

  server PORT           echo server: every connection gets its bytes back
  throughput PORT MB    one connection sends MB megabytes and reads them back; prints Mbit/s
  lockstep PORT MB      the same, one 64 KiB block at a time (sent, then read back whole): one
                        thread, as a TLS connection needs
  latency PORT N [PORT2...]  N times connect + 64-byte echo + close; prints the median in µs
                        (with more ports: takes them in turns, prints each one's median, so that
                        all see the same moments of a noisy machine)

A port written PORT:tls is reached over TLS, trusting the CA file in $TLS_CA and checking the
name in $TLS_NAME (default 127.0.0.1): the TLS handshake counts in the latency.
"""
import os
import socket
import ssl
import statistics
import sys
import threading
import time

CHUNK = 256 * 1024


def serve(port):
    listener = socket.create_server(("127.0.0.1", port), backlog=512, reuse_port=True)

    def echo(conn):
        with conn:
            while data := conn.recv(CHUNK):
                conn.sendall(data)

    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def connect(port):
    """A connection to PORT, or PORT:tls over TLS."""
    port, _, mode = str(port).partition(":")
    conn = socket.create_connection(("127.0.0.1", int(port)))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "tls":
        context = ssl.create_default_context(cafile=os.environ["TLS_CA"])
        conn = context.wrap_socket(conn, server_hostname=os.environ.get("TLS_NAME", "127.0.0.1"))
    return conn


def throughput(port, megabytes):
    total = megabytes * 1024 * 1024
    block = b"x" * CHUNK
    conn = connect(port)
    start = time.perf_counter()

    def send():
        sent = 0
        while sent < total:
            sent += conn.send(block[: min(CHUNK, total - sent)])

    sender = threading.Thread(target=send)
    sender.start()
    received = 0
    while received < total:
        data = conn.recv(CHUNK)
        if not data:
            sys.exit(f"connection closed after {received} of {total} bytes")
        received += len(data)
    sender.join()
    elapsed = time.perf_counter() - start
    conn.close()
    # Bytes carried both ways, as an echo carries them.
    print(f"{2 * total * 8 / elapsed / 1e6:.0f}")


def lockstep(port, megabytes):
    block = b"x" * (64 * 1024)
    blocks = megabytes * 16
    conn = connect(port)
    start = time.perf_counter()
    for _ in range(blocks):
        conn.sendall(block)
        got = 0
        while got < len(block):
            data = conn.recv(len(block) - got)
            if not data:
                sys.exit(f"connection closed after {got} bytes of a block")
            got += len(data)
    elapsed = time.perf_counter() - start
    conn.close()
    print(f"{2 * blocks * len(block) * 8 / elapsed / 1e6:.0f}")


def connect_echo_close(port):
    start = time.perf_counter_ns()
    conn = connect(port)
    conn.sendall(b"p" * 64)
    got = 0
    while got < 64:
        data = conn.recv(64)
        if not data:
            sys.exit("connection closed before the echo")
        got += len(data)
    conn.close()
    return time.perf_counter_ns() - start


def latency(ports, runs):
    """Each counted connection comes right after an uncounted one of the same port: a connection's
    close is still travelling (through a hop, and through the router) while the next one starts,
    and taken in turns alone, each port carried the close of the one before it. A hop's slower
    close then counted as the next port's time: in turns of forwarder, straight and HAProxy, the
    hop taken last measured 60-80 µs less than the same hop taken first. A little of the close
    lasts past one connection, so the turns also go forward and back, each port as often first
    as last."""
    samples = {port: [] for port in ports}
    for run in range(runs):
        for port in ports if run % 2 == 0 else reversed(ports):
            connect_echo_close(port)
            samples[port].append(connect_echo_close(port))
    print(" ".join(f"{statistics.median(samples[port]) / 1000:.0f}" for port in ports))


if __name__ == "__main__":
    mode, port = sys.argv[1], sys.argv[2]
    if mode == "server":
        serve(int(port))
    elif mode == "throughput":
        throughput(port, int(sys.argv[3]))
    elif mode == "lockstep":
        lockstep(port, int(sys.argv[3]))
    else:
        latency([port] + sys.argv[4:], int(sys.argv[3]))
