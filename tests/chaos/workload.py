"""Client workers and the operation history.

Every operation a worker sends is recorded once it completes:
  {worker, node, level, op, key, value, start_ms, end_ms, outcome, reply}
outcome: "ok" (acknowledged), "fail" (definitely not applied: UNAVAILABLE,
TRYAGAIN, STALE, CLUSTERDOWN) or "info" (indeterminate: TIMEOUT, a socket timeout, a reset
or close mid-command, or any other error reply, which is kept as info so a
surprise never turns into a false "did not happen"). Times are ms since the
run started. A worker keeps one connection; after a transport error it opens
a new one to the next node (so workers drift away from a dead node).
"""

import random
import threading
import time

from cluster import CLIENT_PORT
from resp import ConnError, Conn, Err

# Refusals that say the command was applied nowhere (README, Replication; CLUSTERDOWN:
# a node that has not found or joined a cluster yet refuses every keyed command).
DEFINITE = ("UNAVAILABLE", "TRYAGAIN", "STALE", "CLUSTERDOWN")
LEVELS = ("ONE", "QUORUM", "ALL")
SET_KEYS = ["chaos:set:0", "chaos:set:1"]
COUNTER_KEYS = ["chaos:ctr:0", "chaos:ctr:1", "chaos:ctr:2"]
SOCKET_TIMEOUT = 3.0  # > --request-timeout-ms 1500: a node's TIMEOUT reply comes first


def classify(reply):
    if isinstance(reply, Err):
        return "fail" if reply.code in DEFINITE else "info"
    return "ok"


def show(reply, limit=160):
    if isinstance(reply, Err):
        s = "-" + reply
    elif isinstance(reply, ConnError):
        s = f"conn {reply.kind}: {reply.detail}"
    else:
        s = repr(reply)
    return s if len(s) <= limit else s[:limit] + "..."


class History:
    def __init__(self, t0):
        self.t0 = t0
        self.ops = []
        self.lock = threading.Lock()
        self.connect_failures = 0

    def now(self):
        return round((time.monotonic() - self.t0) * 1000.0, 1)

    def count_connect_failure(self):
        with self.lock:
            self.connect_failures += 1

    def add(self, op):
        with self.lock:
            self.ops.append(op)


class Worker(threading.Thread):
    """One connection, one consistency level, a home node (left after an error)."""

    def __init__(self, wid, kind, level, node_index, cluster, history, stop, seed):
        super().__init__(name=wid, daemon=True)
        self.wid, self.kind, self.level = wid, kind, level
        self.node_index = self.home = node_index
        self.away_since = None
        self.cluster, self.history, self.stop = cluster, history, stop
        self.rng = random.Random(f"{seed}:{wid}")
        self.conn = None
        self.conn_gen = 0
        self.error = None

    @property
    def node(self):
        return self.cluster.nodes[self.node_index]

    def _rotate(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.node_index = (self.node_index + 1) % len(self.cluster.nodes)
        if self.node_index == self.home:
            self.away_since = None
        elif self.away_since is None:
            self.away_since = time.monotonic()

    def _connect(self):
        # Back to the home node 2 s after leaving it (workers would otherwise
        # drift onto whichever node failed least and stay there).
        if self.away_since is not None and time.monotonic() - self.away_since > 2.0:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            self.node_index, self.away_since = self.home, None
        while self.conn is None and not self.stop.is_set():
            try:
                self.conn = Conn(self.node.host, CLIENT_PORT, timeout=SOCKET_TIMEOUT, connect_timeout=1.0)
                self.conn_gen += 1
                self.on_new_connection()
            except ConnError:
                self.history.count_connect_failure()
                self._rotate()
                time.sleep(0.1)
        return self.conn is not None

    def on_new_connection(self):
        pass

    def op(self, level, cmd, key, value, extra=None):
        """Sends `CL level cmd...` and records it. Returns (outcome, reply)."""
        if not self._connect():
            return None, None
        node = self.node.name
        start = self.history.now()
        try:
            reply = self.conn.call("CL", level, *cmd)
            outcome = classify(reply)
        except ConnError as e:
            reply, outcome = e, "info"
        end = self.history.now()
        rec = {"worker": self.wid, "node": node, "level": level, "op": cmd[0].lower(), "key": key, "value": value,
               "start_ms": start, "end_ms": end, "outcome": outcome, "reply": show(reply)}
        if extra:
            rec.update(extra)
        self.history.add(rec)
        if isinstance(reply, ConnError):
            self._rotate()
        elif isinstance(reply, Err):
            if reply.code == "CLUSTERDOWN":
                self._rotate()  # this node serves nothing yet: use another
            time.sleep(self.rng.uniform(0.02, 0.05))  # no tight loop on refusals
        return outcome, reply

    def run(self):
        try:
            while not self.stop.is_set():
                self.step()
                time.sleep(self.rng.uniform(0, 0.01))
        except Exception as e:  # a harness bug: reported, fails the run
            import traceback
            self.error = f"{self.wid}: {traceback.format_exc()}"
        finally:
            if self.conn is not None:
                self.conn.close()

    def step(self):
        raise NotImplementedError


class SetWorker(Worker):
    """SADD of unique elements; SREM (same connection) of some whose SADD was acknowledged."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seq = 0
        self.removable = []  # (key, element) acknowledged on the current connection

    def on_new_connection(self):
        self.removable = []

    def step(self):
        if not self._connect():  # first, so the SREM below goes out on the SADD's connection
            return
        if self.removable and self.rng.random() < 0.3:
            key, elem = self.removable.pop(self.rng.randrange(len(self.removable)))
            self.op(self.level, ["SREM", key, elem], key, elem)
            return
        self.seq += 1
        key = self.rng.choice(SET_KEYS)
        elem = f"{self.wid}-{self.seq}"
        gen = self.conn_gen
        outcome, _ = self.op(self.level, ["SADD", key, elem], key, elem)
        if outcome == "ok" and self.conn_gen == gen and self.conn is not None:
            self.removable.append((key, elem))


class CounterWorker(Worker):
    def step(self):
        key = self.rng.choice(COUNTER_KEYS)
        if self.rng.random() < 0.5:
            self.op(self.level, ["INCR", key], key, 1)
        else:
            n = self.rng.randint(2, 5)
            self.op(self.level, ["INCRBY", key, str(n)], key, n)


class RegisterWriter(Worker):
    """SET of increasing integers on its own key; acknowledged QUORUM/ALL writes go to the reader."""

    def __init__(self, *a, reader=None, **kw):
        super().__init__(*a, **kw)
        self.key = f"chaos:reg:{self.wid}"
        self.value = 0
        self.reader = reader

    def step(self):
        self.value += 1
        outcome, _ = self.op(self.level, ["SET", self.key, str(self.value)], self.key, self.value)
        if outcome == "ok" and self.level in ("QUORUM", "ALL") and self.reader is not None:
            self.reader.expect(self.key, self.value, self.node_index, self.history.now())


class RegisterReader(Worker):
    """After an acknowledged QUORUM (or ALL) SET, reads the key at QUORUM through
    another node than the writer's, on a connection of its own to that node
    (one per node, reopened after an error), and records what it expected."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.pending = {}  # key -> (value, writer node index, ack ms): the latest acknowledged
        self.plock = threading.Lock()
        self.conns = {}

    def expect(self, key, value, writer_node, ack_ms):
        with self.plock:
            self.pending[key] = (value, writer_node, ack_ms)

    def step(self):
        with self.plock:
            if not self.pending:
                item = None
            else:
                key = self.rng.choice(sorted(self.pending))
                item = (key,) + self.pending.pop(key)
        if item is None:
            time.sleep(0.01)
            return
        key, value, writer_node, ack_ms = item
        idx = self.rng.choice([i for i in range(len(self.cluster.nodes)) if i != writer_node])
        node = self.cluster.nodes[idx]
        conn = self.conns.get(idx)
        if conn is None:
            try:
                conn = self.conns[idx] = Conn(node.host, CLIENT_PORT, timeout=SOCKET_TIMEOUT, connect_timeout=1.0)
            except ConnError:
                self.history.count_connect_failure()
                time.sleep(0.05)
                return
        start = self.history.now()
        try:
            reply = conn.call("CL", "QUORUM", "GET", key)
            outcome = classify(reply)
        except ConnError as e:
            reply, outcome = e, "info"
            conn.close()
            del self.conns[idx]
        end = self.history.now()
        rec = {"worker": self.wid, "node": node.name, "level": "QUORUM", "op": "get", "key": key, "value": None,
               "start_ms": start, "end_ms": end, "outcome": outcome, "reply": show(reply),
               "expect": value, "writer_node": self.cluster.nodes[writer_node].name, "write_acked_ms": ack_ms}
        if outcome == "ok":
            rec["read"] = reply
        self.history.add(rec)
        if isinstance(reply, Err):
            time.sleep(self.rng.uniform(0.02, 0.05))

    def run(self):
        try:
            super().run()
        finally:
            for c in self.conns.values():
                c.close()
