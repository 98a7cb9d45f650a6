"""A tiny RESP2 client with timeouts (stdlib only).

Replies: simple strings as str, integers as int, bulk strings as str (UTF-8,
errors replaced) or None, arrays as lists, error replies as Err (not raised:
a refusal is a normal outcome for the harness). Transport problems raise
ConnError with a kind: "connect" (nothing was sent), "timeout", "reset",
"closed" (the command may have been applied). After a ConnError the
connection is unusable (a late reply would desynchronise it): open a new one.
"""

import socket


class Err(str):
    """An error reply, e.g. Err('UNAVAILABLE need 2 of 3 replicas, 1 reachable')."""

    @property
    def code(self):
        return self.split(" ", 1)[0]


class ConnError(Exception):
    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host, port, timeout=3.0, connect_timeout=1.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.buf = b""
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as e:
            raise ConnError("connect", f"{host}:{port}: {e}") from None
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, *args):
        try:
            self.sock.sendall(encode(args))
            return self._reply()
        except socket.timeout:
            raise ConnError("timeout", f"no reply from {self.host}:{self.port} within {self.timeout}s") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            raise ConnError("reset", f"{self.host}:{self.port}: {e}") from None
        except OSError as e:
            raise ConnError("reset", f"{self.host}:{self.port}: {e}") from None

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnError("closed", f"{self.host}:{self.port} closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        if not line:
            raise ConnError("closed", "empty reply line")
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode(errors="replace")
        if t == b"-":
            return Err(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnError("closed", f"unexpected reply type {line[:40]!r}")


def call_once(host, port, *args, timeout=2.0):
    """One command on a fresh connection; returns the reply or raises ConnError."""
    c = Conn(host, port, timeout=timeout, connect_timeout=timeout)
    try:
        return c.call(*args)
    finally:
        c.close()
