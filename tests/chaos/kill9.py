#!/usr/bin/env python3
"""Crash durability of one latticed process: kill -9 under write load, restart, check.

  tests/chaos/kill9.py [--cycles N] [--seed X] [--clients C] [--max-seconds S] [--keep-data]
  (LATTICED or --binary names the binary; default build/node/latticed)

One node runs standalone (no seeds: it founds alone) with `--sync always` on
127.0.0.1, on two free ports and a new temporary data directory. Each cycle:

1. C client threads, one connection each, write over every value type: counters
   (INCR, INCRBY), strings (SET of increasing sequence numbers), sets (SADD of
   new members, SREM of present ones, SADD again of removed ones), maps (HSET,
   HDEL, HINCRBY), MV registers (MV.SET) and flags (FLAG.ENABLE,
   FLAG.DISABLE). Each client owns its keys and writes one command at a time,
   so it knows every key's exact state from the writes it got a reply to, plus
   at most one write in flight (sent, no reply) when its connection breaks.
   Every reply is checked against that model too (INCR's new value, SADD's
   count of new members, ...).
2. Once every client has had a write acknowledged (within 10 s of the start of
   the cycle), a seeded random 0.2-1.5 s more of load; then SIGKILL the node, restart it on
   the same data directory and ports, and time from exec to the first PING
   reply and to the first answered keyed read (each must be <= 5 s).
3. Read every key and require the acknowledged state exactly: the state before
   the in-flight write, or after it, where one targets the key, and nothing
   else (a lost acknowledged write, or a write that never happened, fails and
   names the key, what was expected and what was found). The model then takes
   the state found, so the next cycle's load continues on the same keys.

After the last cycle the node is stopped with SIGTERM (it must exit 0),
started once more, checked once more and stopped; the temporary directory is
removed (kept with --keep-data). Every wait has a deadline, and the whole run
fails once it exceeds --max-seconds. `--seed X` replays the kill delays and each
client's choice of writes (timing, so the interleaving, is real). Exit 0 when
every check passed, 1 on a finding or a harness failure, 2 on bad usage.
"""

import argparse
import collections
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import _pdeathsig, tail  # noqa: E402
from resp import ConnError, Conn, Err, call_once  # noqa: E402

HOST = "127.0.0.1"
SERVE_LIMIT_S = 5.0      # restart (exec) to first PING reply and to first keyed read
START_WAIT_S = 15.0      # how long a start is waited for before giving up
KILL_WAIT_S = 10.0       # a SIGKILLed process must have exited by then
IDLE_WAIT_S = 15.0       # every client must have noticed the kill by then
STOP_WAIT_S = 20.0       # SIGTERM to exit
REPLY_TIMEOUT_S = 10.0   # a client's reply deadline while the node is alive
FIRST_ACK_S = 10.0       # each client's first write of a cycle must be acknowledged by then
KEYS_PER_TYPE = 4
TYPES = ("counter", "string", "set", "hash", "mv", "flag")
# Refusals the node may answer instead of applying (e.g. right after a start).
REFUSALS = ("TRYAGAIN", "LOADING", "CLUSTERDOWN", "BUSY")


class Failure(Exception):
    """A finding about the database (a lost or invented write, a slow restart, a crash)."""


class HarnessError(Exception):
    """The test itself could not do its job."""


def log(msg):
    print(f"[kill9 {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- the node --------------------------------------------------------------------


def free_ports(n):
    """n distinct ports that bind now, below the ephemeral range when possible.

    The node keeps its ports across restarts; ports outside the ephemeral range
    cannot be taken in between by some outgoing connection.
    """
    lo, hi = 20000, 32767
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
        hi = min(hi, eph_lo - 1)
    except (OSError, ValueError, IndexError):
        pass
    pick = random.SystemRandom()  # not the seed: a replay must not collide with the run it replays
    ports = []
    for _ in range(200):
        p = pick.randint(lo, hi) if hi > lo else 0
        s = socket.socket()
        try:
            s.bind((HOST, p))
            p = s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
        if p not in ports:
            ports.append(p)
        if len(ports) == n:
            return ports
    raise HarnessError("found no free ports on 127.0.0.1")


class Node:
    def __init__(self, binary, run_dir):
        self.binary = binary
        self.run_dir = run_dir
        self.data_dir = os.path.join(run_dir, "data")
        self.log_path = os.path.join(run_dir, "latticed.log")
        self.port, self.peer_port = free_ports(2)
        self.proc = None
        self.starts = 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self):
        args = [self.binary, "--node-id", "k9", "--bind", HOST, "--port", str(self.port),
                "--peer-port", str(self.peer_port), "--data-dir", self.data_dir,
                "--sync", "always", "--log-level", "info"]
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n==== kill9: start {self.starts + 1}: {' '.join(args)}\n".encode())
            logf.flush()
            # Every other start checks each write's delta (LATTICE_CHECK_DELTAS),
            # which takes the general write path; the others take the fast
            # paths of GET, plain SET and INCR (crdt/codec.h) as production does.
            env = dict(os.environ)
            if self.starts % 2 == 0:
                env["LATTICE_CHECK_DELTAS"] = "1"
            else:
                env.pop("LATTICE_CHECK_DELTAS", None)
            t0 = time.monotonic()
            # From the main thread only: PDEATHSIG fires when the forking thread exits.
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, preexec_fn=_pdeathsig)
        self.starts += 1
        return t0

    def _exited(self, what):
        return Failure(f"latticed exited ({self.proc.returncode}) {what}; {self.log_path} ends with:\n"
                       f"{tail(self.log_path, 30)}")

    def start(self, probe_key):
        """Starts the node; returns (ms to first PING reply, ms to first keyed read), both from exec."""
        for attempt in range(3):
            t0 = self._spawn()
            try:
                return self._wait_serving(t0, probe_key)
            except Failure:
                # Only the first start may move to other ports (someone took ours); a
                # restart that cannot bind its ports is a finding.
                if self.starts > 1 or attempt == 2 or "in use" not in tail(self.log_path, 5):
                    raise
                self.port, self.peer_port = free_ports(2)
        raise HarnessError("unreachable")

    def _wait_serving(self, t0, probe_key):
        deadline = t0 + START_WAIT_S
        ping_ms = read_ms = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._exited(f"during start {self.starts}")
            try:
                if ping_ms is None:
                    r = call_once(HOST, self.port, "PING", timeout=0.5)
                    if r is not None and not isinstance(r, Err):
                        ping_ms = (time.monotonic() - t0) * 1000
                if ping_ms is not None:
                    r = call_once(HOST, self.port, "GET", probe_key, timeout=0.5)
                    if not isinstance(r, Err):
                        read_ms = (time.monotonic() - t0) * 1000
                        return ping_ms, read_ms
            except ConnError:
                pass
            time.sleep(0.005)
        what = "a PING reply" if ping_ms is None else f"an answered GET {probe_key} (PING after {ping_ms:.0f} ms)"
        raise Failure(f"start {self.starts}: no {what} within {START_WAIT_S:.0f} s of exec; "
                      f"{self.log_path} ends with:\n{tail(self.log_path, 30)}")

    def kill9(self):
        if not self.alive():
            raise self._exited("before it was killed")
        os.kill(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"pid {self.proc.pid} still there {KILL_WAIT_S:.0f} s after SIGKILL") from None

    def stop(self):
        """SIGTERM; returns the exit code (the node must stop gracefully)."""
        if not self.alive():
            raise self._exited("before it was stopped")
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            raise Failure(f"latticed did not exit within {STOP_WAIT_S:.0f} s of SIGTERM") from None

    def cleanup(self):
        if self.alive():
            self.proc.kill()
            try:
                self.proc.wait(timeout=KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                pass


# ---- the model -------------------------------------------------------------------
#
# A key's state as the test expects to read it back:
#   counter: int or None (absent)      string: str or None
#   set: frozenset of members          hash: dict field -> str
#   mv: tuple of values (one, or none) flag: bool


def normalize(kind, reply):
    """The reply of a key's read in the model's form (the reply itself if it has another shape)."""
    try:
        return _normalize(kind, reply)
    except (TypeError, ValueError):
        return reply


def _normalize(kind, reply):
    if kind == "counter":
        return int(reply) if reply is not None else None
    if kind == "string":
        return reply
    if kind == "set":
        return frozenset(reply or [])
    if kind == "hash":
        r = reply or []
        return dict(zip(r[0::2], r[1::2]))
    if kind == "mv":
        return tuple(sorted(reply or []))
    if kind == "flag":
        return bool(reply)
    raise ValueError(kind)


READ_CMD = {"counter": "GET", "string": "GET", "set": "SMEMBERS", "hash": "HGETALL", "mv": "MV.GET",
            "flag": "FLAG.GET"}
EMPTY = {"counter": None, "string": None, "set": frozenset(), "hash": {}, "mv": (), "flag": False}


class Op:
    """One write: its command, the state it leads to and the reply it must get."""

    def __init__(self, kind, key, cmd, after, want):
        self.kind, self.key, self.cmd, self.after, self.want = kind, key, cmd, after, want

    def __str__(self):
        return " ".join(str(a) for a in self.cmd)


def fmt(kind, state, most=12):
    if kind == "set" and isinstance(state, frozenset):
        items = sorted(state)
    elif kind == "hash" and isinstance(state, dict):
        items = [f"{f}={v}" for f, v in sorted(state.items())]
    elif kind == "mv" and isinstance(state, tuple):
        return "[" + ", ".join(state) + "]"
    else:
        return "absent" if state is None else repr(state)
    more = f", ... ({len(items)} in all)" if len(items) > most else ""
    return "{" + ", ".join(items[:most]) + more + "}"


def diff(kind, want, got, last):
    """What differs between an expected and a found state, in words; last(part) names the
    last acknowledged write of a set member or map field."""
    if kind == "set" and isinstance(got, frozenset):
        return [f"member {m} missing (last acknowledged: {last(m)})" for m in sorted(want - got)] + \
               [f"member {m} present (last acknowledged: {last(m)})" for m in sorted(got - want)]
    if kind == "hash" and isinstance(got, dict):
        return [f"field {f}: expected {fmt('string', want.get(f))}, found {fmt('string', got.get(f))} "
                f"(last acknowledged: {last(f)})"
                for f in sorted(set(want) | set(got)) if want.get(f) != got.get(f)]
    return [f"expected {fmt(kind, want)}, found {fmt(kind, got)}"]


# ---- clients ---------------------------------------------------------------------


class Client(threading.Thread):
    """One connection writing its own keys one command at a time."""

    def __init__(self, w, seed, port, ctl):
        super().__init__(name=f"client-{w}", daemon=True)
        self.w = w
        self.rng = random.Random(f"{seed}:{w}")
        self.port = port
        self.ctl = ctl
        self.keys = [(kind, f"k9:{w}:{kind}:{j}") for kind in TYPES for j in range(KEYS_PER_TYPE)]
        self.state = {key: EMPTY[kind] for kind, key in self.keys}
        self.removed = collections.defaultdict(list)     # set key -> members removed (to add again)
        self.recent = collections.defaultdict(lambda: collections.deque(maxlen=4))  # key -> (cycle, op, outcome)
        self.last = {}              # (key, member or field) -> (cycle, op) of its last acknowledged write
        self.seq = 0
        self.inflight = None        # the Op sent without a reply when the connection broke
        self.acked = collections.Counter()    # command name -> acknowledged writes
        self.refused = collections.Counter()  # error code -> refusals
        self.cycle_acked = 0
        self.max_reply_s = 0.0      # longest wait for an acknowledged write's reply
        self.gen = 0                # the last cycle this client ran
        self.failure = None         # a Failure found while writing
        self.error = None           # anything else that went wrong in the thread

    # What to write next, and what it must do. The state before is self.state[key].
    def next_op(self):
        rng = self.rng
        kind = rng.choice(TYPES)
        key = f"k9:{self.w}:{kind}:{rng.randrange(KEYS_PER_TYPE)}"
        s = self.state[key]
        self.seq += 1
        seq = self.seq
        if kind == "counter":
            n = 1 if rng.random() < 0.5 else rng.randint(1, 1000)
            cmd = ("INCR", key) if n == 1 else ("INCRBY", key, n)
            after = (s or 0) + n
            return Op(kind, key, cmd, after, after)
        if kind == "string":
            v = f"{seq}:" + "x" * rng.randrange(64)
            return Op(kind, key, ("SET", key, v), v, "OK")
        if kind == "set":
            p_rem = 0.6 if len(s) > 40 else 0.3
            if s and rng.random() < p_rem:
                m = rng.choice(sorted(s))
                return Op(kind, key, ("SREM", key, m), s - {m}, 1)
            members = [f"m{seq}.{i}" for i in range(rng.randint(1, 3))]
            gone = [m for m in self.removed[key] if m not in s]
            if gone and rng.random() < 0.3:
                members.append(rng.choice(gone))  # added again after an acknowledged SREM
            return Op(kind, key, ("SADD", key, *members), s | set(members), len(set(members) - s))
        if kind == "hash":
            r = rng.random()
            if s and r < 0.2:
                f = rng.choice(sorted(s))
                return Op(kind, key, ("HDEL", key, f), {k: v for k, v in s.items() if k != f}, 1)
            if r < 0.55:
                f = f"c{rng.randrange(4)}"
                n = rng.randint(-5, 50)
                total = int(s.get(f, "0")) + n
                return Op(kind, key, ("HINCRBY", key, f, n), {**s, f: str(total)}, total)
            fields = rng.sample([f"f{i}" for i in range(8)], rng.randint(1, 2))
            after = {**s, **{f: str(seq) for f in fields}}
            args = [a for f in fields for a in (f, str(seq))]
            return Op(kind, key, ("HSET", key, *args), after, sum(f not in s for f in fields))
        if kind == "mv":
            v = str(seq)
            return Op(kind, key, ("MV.SET", key, v), (v,), "OK")
        on = rng.random() < 0.5
        return Op(kind, key, ("FLAG.ENABLE" if on else "FLAG.DISABLE", key), on, "OK")

    def run(self):
        try:
            while True:
                gen = self.ctl.wait_go(self.gen)
                if gen is None:
                    return
                self.gen = gen
                self.load()
                self.ctl.idle(self)
        except Exception as e:  # reported by the main thread
            self.error = f"{type(e).__name__}: {e}"
            self.ctl.idle(self)

    def load(self):
        try:
            conn = Conn(HOST, self.port, timeout=REPLY_TIMEOUT_S, connect_timeout=2.0)
        except ConnError as e:
            self.failure = Failure(f"client {self.w}: could not connect to the serving node: {e}")
            return
        try:
            while self.failure is None and not self.ctl.stopping:
                op = self.next_op()
                t = time.monotonic()
                try:
                    reply = conn.call(*op.cmd)
                except ConnError as e:
                    # Sent (or maybe sent): applied or not, the read after the restart tells.
                    self.inflight = op
                    self.recent[op.key].append((self.gen, str(op), f"no reply ({e.kind})"))
                    return
                if isinstance(reply, Err):
                    if reply.code in REFUSALS:
                        self.refused[reply.code] += 1
                        self.recent[op.key].append((self.gen, str(op), f"refused: {reply}"))
                        time.sleep(0.01)
                        continue
                    self.failure = Failure(f"client {self.w}: `{op}` answered the error `{reply}`")
                    return
                if reply != op.want:
                    self.failure = Failure(
                        f"key {op.key}: `{op}` replied {reply!r}, expected {op.want!r} from the acknowledged "
                        f"state {fmt(op.kind, self.state[op.key])}; recent writes: {self.history(op.key)}")
                    return
                self.acked[op.cmd[0]] += 1
                self.cycle_acked += 1
                self.max_reply_s = max(self.max_reply_s, time.monotonic() - t)
                self.recent[op.key].append((self.gen, str(op), "acknowledged"))
                self.took_effect(op, "")
        finally:
            conn.close()

    def took_effect(self, op, how):
        """The model after `op` (acknowledged, or found applied after the kill)."""
        self.state[op.key] = op.after
        if op.cmd[0] == "SREM":
            self.removed[op.key].append(op.cmd[2])
        parts = op.cmd[2:] if op.kind == "set" else op.cmd[2::2] if op.cmd[0] == "HSET" else op.cmd[2:3]
        if op.kind in ("set", "hash"):
            for part in parts:
                self.last[op.key, part] = (self.gen, str(op) + how)

    def history(self, key):
        return "; ".join(f"[cycle {c}] {o} -> {r}" for c, o, r in self.recent[key]) or "none"

    def last_write(self, key, part):
        c, o = self.last.get((key, part), (None, None))
        return f"`{o}` in cycle {c}" if o else "none"

    def verify(self, conn, when):
        """Reads every key of this client; returns (failures, in-flight applied or None)."""
        failures = []
        applied = None
        for kind, key in self.keys:
            try:
                reply = conn.call(READ_CMD[kind], key)
            except ConnError as e:
                raise Failure(f"reading {key} {when} failed: {e}") from None
            if isinstance(reply, Err):
                failures.append(f"key {key}: `{READ_CMD[kind]} {key}` answered the error `{reply}`")
                continue
            got = normalize(kind, reply)
            want = self.state[key]
            op = self.inflight if self.inflight is not None and self.inflight.key == key else None
            if got == want:
                if op is not None:
                    applied = op.after == want  # a write that changes nothing counts as applied
                continue
            if op is not None and got == op.after:
                self.took_effect(op, " (in flight at the kill, found applied)")
                applied = True
                continue
            what = "; ".join(diff(kind, want, got, lambda part: self.last_write(key, part)))
            msg = f"key {key} ({kind}) {when}: {what}"
            if kind in ("set", "hash"):
                msg += f"\n      expected {fmt(kind, want)}\n      found    {fmt(kind, got)}"
            if op is not None:
                msg += f"\n      or, with the write in flight at the kill (`{op}`): {fmt(kind, op.after)}"
            failures.append(msg + f"\n      last writes of the key: {self.history(key)}")
        self.inflight = None
        return failures, applied


class Control:
    """Starts the clients' cycles and waits for all of them to stop writing."""

    def __init__(self):
        self.cv = threading.Condition()
        self.gen = 0
        self.stopping = False
        self.done = set()

    def wait_go(self, last):
        with self.cv:
            self.cv.wait_for(lambda: self.gen > last or self.stopping)
            return None if self.stopping else self.gen

    def go(self):
        with self.cv:
            self.gen += 1
            self.done.clear()
            self.cv.notify_all()

    def idle(self, client):
        with self.cv:
            self.done.add(client.w)
            self.cv.notify_all()

    def wait_idle(self, n, seconds):
        with self.cv:
            return self.cv.wait_for(lambda: len(self.done) == n, timeout=seconds)

    def stop(self):
        with self.cv:
            self.stopping = True
            self.cv.notify_all()


# ---- the run ---------------------------------------------------------------------


def du_mib(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total / 2**20


def raise_found(clients):
    for c in clients:
        if c.failure:
            raise c.failure
        if c.error:
            raise HarnessError(f"client {c.w}: {c.error}")


def verify_all(node, clients, when):
    try:
        conn = Conn(HOST, node.port, timeout=REPLY_TIMEOUT_S, connect_timeout=2.0)
    except ConnError as e:
        raise Failure(f"could not connect to read the keys back {when}: {e}") from None
    failures, applied = [], collections.Counter()
    try:
        for c in clients:
            had = c.inflight is not None
            f, a = c.verify(conn, when)
            failures += f
            if had:
                applied["applied" if a else "not applied"] += 1
    finally:
        conn.close()
    if failures:
        shown = failures[:20]
        more = f"\n  (+{len(failures) - 20} more)" if len(failures) > 20 else ""
        raise Failure(f"{len(failures)} key(s) do not hold their acknowledged state:\n  " +
                      "\n  ".join(shown) + more)
    return applied


def run(args):
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    log(f"seed {seed} (replay: tests/chaos/kill9.py --seed {seed} --cycles {args.cycles} --clients {args.clients})")
    rng = random.Random(seed)
    t_start = time.monotonic()
    budget = args.max_seconds if args.max_seconds else 30 + 8 * args.cycles

    def check_budget(what):
        if time.monotonic() - t_start > budget:
            raise Failure(f"the run exceeded its bound of {budget:.0f} s ({what})")

    run_dir = tempfile.mkdtemp(prefix="lattice-kill9-")
    node = Node(args.binary, run_dir)
    ctl = Control()
    clients = []
    serve = []   # (ms to PING, ms to keyed read) per restart after a kill
    first_ack = []  # s from a cycle's start until every client had a write acknowledged
    inflight = collections.Counter()
    ok = False
    try:
        probe = "k9:0:counter:0"
        p, r = node.start(probe)
        log(f"latticed pid {node.proc.pid} on {HOST}:{node.port} (peer {node.peer_port}), data {node.data_dir}; "
            f"serving {p:.0f} ms after exec")
        clients = [Client(w, seed, node.port, ctl) for w in range(args.clients)]
        for c in clients:
            c.start()
        for cycle in range(1, args.cycles + 1):
            check_budget(f"before cycle {cycle}")
            delay = rng.uniform(0.2, 1.5)
            for c in clients:   # idle now; reset before they start
                c.cycle_acked = 0
            t_go = time.monotonic()
            ctl.go()
            # The load runs `delay` from when every client has had a write acknowledged.
            end = None
            while end is None or time.monotonic() < end:   # a finding or a crash ends it early
                if not node.alive():
                    raise node._exited(f"on its own during cycle {cycle}'s load")
                raise_found(clients)
                if end is None and all(c.cycle_acked for c in clients):
                    first_ack.append(time.monotonic() - t_go)
                    end = time.monotonic() + delay
                if end is None and time.monotonic() - t_go > FIRST_ACK_S:
                    slow = [c.w for c in clients if not c.cycle_acked]
                    raise Failure(f"cycle {cycle}: client(s) {slow} got no write acknowledged within "
                                  f"{FIRST_ACK_S:.0f} s of the node serving")
                time.sleep(0.005 if end is None else min(0.02, max(0.0, end - time.monotonic())))
            node.kill9()
            if not ctl.wait_idle(len(clients), IDLE_WAIT_S):
                raise HarnessError(f"cycle {cycle}: clients still writing {IDLE_WAIT_S:.0f} s after the kill")
            raise_found(clients)
            acked = sum(c.cycle_acked for c in clients)
            pending = sum(c.inflight is not None for c in clients)
            p, r = node.start(probe)
            serve.append((p, r))
            applied = verify_all(node, clients, f"after cycle {cycle}'s restart")
            inflight.update(applied)
            log(f"cycle {cycle}/{args.cycles}: first acks after {first_ack[-1] * 1000:.0f} ms, then {delay:.2f} s load, "
                f"{acked} writes acknowledged, {pending} in flight "
                f"at the kill ({applied['applied']} applied); restart: PING after {p:.0f} ms, "
                f"keyed read after {r:.0f} ms; {len(clients) * len(clients[0].keys)} keys as acknowledged")
            if max(p, r) > SERVE_LIMIT_S * 1000:
                raise Failure(f"cycle {cycle}: the restarted node served only {max(p, r):.0f} ms after exec "
                              f"(limit {SERVE_LIMIT_S * 1000:.0f} ms: PING {p:.0f} ms, keyed read {r:.0f} ms)")
        ctl.stop()
        for c in clients:
            c.join(timeout=5)
        rc = node.stop()
        if rc != 0:
            raise Failure(f"latticed exited {rc} after SIGTERM (a graceful stop exits 0); {node.log_path} ends with:\n"
                          f"{tail(node.log_path, 20)}")
        node.start(probe)
        verify_all(node, clients, "after the final restart (following a graceful stop)")
        rc = node.stop()
        if rc != 0:
            raise Failure(f"latticed exited {rc} after the final SIGTERM")
        ok = True
        disk_mib = du_mib(node.data_dir)
    finally:
        ctl.stop()
        node.cleanup()
        if not ok:
            run.node_log = f"latticed's log ({node.log_path}) ends with:\n{tail(node.log_path, 15)}"
        if args.keep_data:
            log(f"data kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)

    acked = collections.Counter()
    refused = collections.Counter()
    for c in clients:
        acked.update(c.acked)
        refused.update(c.refused)
    by_type = [("counter", ("INCR", "INCRBY")), ("string", ("SET",)), ("set", ("SADD", "SREM")),
               ("hash", ("HSET", "HDEL", "HINCRBY")), ("mv", ("MV.SET",)), ("flag", ("FLAG.ENABLE", "FLAG.DISABLE"))]
    log(f"PASS: {args.cycles} kill -9 cycles, seed {seed}, {time.monotonic() - t_start:.1f} s")
    log(f"acknowledged writes: {sum(acked.values())} in all")
    for kind, cmds in by_type:
        log(f"  {kind:8s} {sum(acked[c] for c in cmds):7d}  (" + ", ".join(f"{c} {acked[c]}" for c in cmds) + ")")
    log(f"writes in flight at a kill: {sum(inflight.values())} ({inflight['applied']} applied, "
        f"{inflight['not applied']} not)" + (f"; refusals: {dict(refused)}" if refused else ""))
    ping = [p for p, _ in serve]
    read = [r for _, r in serve]
    log(f"until every client's first write of a cycle was acknowledged: max {max(first_ack) * 1000:.0f} ms, "
        f"median {statistics.median(first_ack) * 1000:.0f} ms; longest reply to an acknowledged write: "
        f"{max(c.max_reply_s for c in clients) * 1000:.0f} ms")
    log(f"data directory at the end: {disk_mib:.0f} MiB on disk")
    log(f"restart to first PING reply: max {max(ping):.0f} ms, median {statistics.median(ping):.0f} ms; "
        f"to first keyed read: max {max(read):.0f} ms, median {statistics.median(read):.0f} ms")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description="kill -9 crash durability of one latticed node under write load.")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None, help="replay the kill delays and clients' writes of a run")
    ap.add_argument("--clients", type=int, default=6, help="client connections (threads) writing")
    ap.add_argument("--max-seconds", type=float, default=None, help="bound on the whole run (default 30 + 8/cycle)")
    ap.add_argument("--binary", default=os.environ.get("LATTICED", os.path.join(root, "build/node/latticed")))
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data directory and log")
    args = ap.parse_args()
    if args.cycles < 1 or args.clients < 1:
        ap.error("--cycles and --clients must be at least 1")
    if not os.access(args.binary, os.X_OK):
        print(f"kill9: FAIL: no latticed binary at {args.binary} (set LATTICED or --binary)", file=sys.stderr)
        return 1
    def on_term(*_):  # ctest's timeout: stop the node and remove the directory on the way out
        raise HarnessError("terminated by SIGTERM")
    signal.signal(signal.SIGTERM, on_term)
    try:
        run(args)
        return 0
    except Failure as e:
        print(f"kill9: FAIL: {e}", flush=True)
    except HarnessError as e:
        print(f"kill9: HARNESS ERROR: {e}", flush=True)
    if getattr(run, "node_log", None):
        print(run.node_log, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
