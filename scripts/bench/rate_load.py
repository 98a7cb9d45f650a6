#!/usr/bin/env python3
"""A fixed-rate write load for scripts/bench/cluster.sh: `CL ONE SET bg:<n> v`
spread over the three nodes of scripts/cluster.sh, pipelined in 10 ms ticks,
for a bounded time. Prints the rate achieved ("<ops> ops in <s> s = <r> ops/s")."""
import argparse
import selectors
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, required=True, help="operations per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=6)
    opts = ap.parse_args()
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(opts.conns):
        s = socket.create_connection(("127.0.0.1%d" % (1 + i % 3), 7379))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conns.append({"sock": s, "pending": 0, "out": b""})
        sel.register(s, selectors.EVENT_READ, conns[-1])
    tick = 0.01
    start = time.perf_counter()
    sent = done = 0
    n = 0
    credit = 0.0
    next_tick = start
    while True:
        now = time.perf_counter()
        if now - start < opts.seconds and now >= next_tick:
            credit += opts.rate * tick
            next_tick += tick
            while credit >= 1:
                c = conns[n % len(conns)]
                key = b"bg:%d" % n
                c["out"] += b"*5\r\n$2\r\nCL\r\n$3\r\nONE\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n" % (len(key), key)
                c["pending"] += 1
                n += 1
                sent += 1
                credit -= 1
            for c in conns:
                if c["out"]:
                    try:
                        k = c["sock"].send(c["out"])
                        c["out"] = c["out"][k:]
                    except BlockingIOError:
                        pass
        if now - start >= opts.seconds and done >= sent:
            break
        if now - start >= opts.seconds + 10:
            break
        for key, _ in sel.select(timeout=max(0.0, min(tick, next_tick - time.perf_counter()))):
            c = key.data
            try:
                data = c["sock"].recv(1 << 16)
            except BlockingIOError:
                continue
            got = data.count(b"\r\n")  # one line per reply: +OK or -ERR ...
            c["pending"] -= got
            done += got
    elapsed = time.perf_counter() - start
    print("%d ops in %.1f s = %.0f ops/s" % (done, elapsed, done / elapsed))


if __name__ == "__main__":
    main()
