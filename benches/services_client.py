"""Load for benches/services.sh (run as root inside a test host's network namespace).

  server PORT           echo server: every connection gets its bytes back
  throughput PORT MB    one connection sends MB megabytes and reads them back; prints Mbit/s
  latency PORT N [PORT2]  N times connect + 64-byte echo + close; prints the median in µs
                        (with PORT2: alternates the two ports, prints both medians, so that
                        both see the same moments of a noisy machine)
"""
import socket
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


def throughput(port, megabytes):
    total = megabytes * 1024 * 1024
    block = b"x" * CHUNK
    conn = socket.create_connection(("127.0.0.1", port))
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


def connect_echo_close(port):
    start = time.perf_counter_ns()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    samples = {port: [] for port in ports}
    for _ in range(runs):
        for port in ports:
            samples[port].append(connect_echo_close(port))
    print(" ".join(f"{statistics.median(samples[port]) / 1000:.0f}" for port in ports))


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        serve(port)
    elif mode == "throughput":
        throughput(port, int(sys.argv[3]))
    else:
        latency([port] + [int(p) for p in sys.argv[4:]], int(sys.argv[3]))
