#!/usr/bin/env python3
"""Stable latency of a 3-node cluster (scripts/cluster.sh): the time from the
ONE acknowledgement of a write on n1 until both other replicas show it (each
polled with CL ONE GET, which reads a replica's own copy). Prints
"p50 X ms, p99 Y ms, max Z ms"."""
import argparse
import random
import socket
import time


def connect(host):
    s = socket.create_connection((host, 7379))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")


def call(conn, *args):
    sock, f = conn
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    line = f.readline()
    if line.startswith(b"$"):
        n = int(line[1:])
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if line.startswith(b"-"):
        raise RuntimeError(line.decode().strip())
    return line.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=400)
    ap.add_argument("--timeout", type=float, default=5.0)
    opts = ap.parse_args()
    writer = connect("127.0.0.11")
    readers = [connect("127.0.0.12"), connect("127.0.0.13")]
    tag = random.getrandbits(32)
    samples = []
    for i in range(opts.probes):
        key = "probe:%x:%d" % (tag, i)
        call(writer, "CL", "ONE", "SET", key, "x")
        t0 = time.perf_counter()
        pending = list(readers)
        while pending:
            pending = [r for r in pending if call(r, "CL", "ONE", "GET", key) is None]
            if time.perf_counter() - t0 > opts.timeout:
                raise SystemExit("probe %d not replicated within %.1f s" % (i, opts.timeout))
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
    print("p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (q(0.50), q(0.99), samples[-1]))


if __name__ == "__main__":
    main()
