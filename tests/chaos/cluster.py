"""The chaos cluster: three latticed processes on 127.0.0.51-53 and the
iptables chain that partitions them.

Every process is started by start_node() (the one place that knows latticed's
command line). Processes are started from the main thread only: each gets
PR_SET_PDEATHSIG=SIGKILL, which the kernel fires when the *thread* that forked
it exits, so a harness killed without a chance to clean up leaves no node.
"""

import ctypes
import os
import re
import shutil
import signal
import subprocess
import time

from resp import ConnError, Err, call_once

CLIENT_PORT = 7379
PEER_PORT = 17379
CHAIN = "LATTICE_CHAOS"


class HarnessError(Exception):
    """The harness itself could not do its job (not a finding about the database)."""


def addr(i):
    return f"127.0.0.{50 + i}"


def _pdeathsig():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def sh(cmd, check=False):
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise HarnessError(f"`{cmd}` failed ({p.returncode}): {p.stderr.strip()}")
    return p


# ---- latticed ------------------------------------------------------------------


def latticed_flags(binary):
    p = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    return p.stdout + p.stderr


class Node:
    def __init__(self, i, run_dir):
        self.i = i
        self.name = f"n{i}"
        self.host = addr(i)
        self.dir = os.path.join(run_dir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "latticed.log")
        self.proc = None
        self.paused = False
        self.starts = 0

    @property
    def peer(self):
        return f"{self.host}:{PEER_PORT}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, binary, run_dir, n=3, symmetric=None):
        self.binary = binary
        self.nodes = [Node(i, run_dir) for i in range(1, n + 1)]
        if symmetric is None:
            symmetric = "--bootstrap-expect" in latticed_flags(binary)
        self.symmetric = symmetric
        self.unexpected_exits = []  # (node, returncode, t) of processes we did not stop

    # The one function that knows how a node is started.
    def start_node(self, node, first_start):
        """Starts `node` on its data directory and waits until it answers PING.

        Seeds: with --bootstrap-expect (symmetric formation) every node gets
        the same list of all peers. Otherwise node 1 founds the cluster
        without seeds on its first start and the others are seeded with it;
        a restart (after a kill or a wipe) is seeded with the other nodes, so
        a wiped node 1 rejoins instead of founding a second cluster.
        """
        if self.symmetric:
            seeds = [n.peer for n in self.nodes]
        elif first_start:
            seeds = [] if node.i == 1 else [self.nodes[0].peer]
        else:
            seeds = [n.peer for n in self.nodes if n is not node]
        args = [self.binary, "--node-id", node.name, "--bind", node.host,
                "--port", str(CLIENT_PORT), "--peer-port", str(PEER_PORT),
                "--data-dir", node.data_dir, "--sync", "always",
                "--ae-interval-ms", "500", "--request-timeout-ms", "1500",
                "--tombstone-grace-ms", "1000", "--log-level", "info"]
        if seeds:
            args += ["--seeds", ",".join(seeds)]
        if self.symmetric:
            args += ["--bootstrap-expect", str(len(self.nodes))]
        os.makedirs(node.dir, exist_ok=True)
        log = open(node.log_path, "ab")
        log.write(f"\n==== chaos: start {node.starts + 1}: {' '.join(args)}\n".encode())
        log.flush()
        env = dict(os.environ, LATTICE_CHECK_DELTAS="1")  # every write checks its delta
        node.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True, preexec_fn=_pdeathsig)
        log.close()
        node.paused = False
        node.starts += 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise HarnessError(f"{node.name} exited ({node.proc.returncode}) right after start; "
                                   f"see {node.log_path}:\n{tail(node.log_path)}")
            try:
                if call_once(node.host, CLIENT_PORT, "PING", timeout=1.0) is not None:
                    return
            except ConnError:
                pass
            time.sleep(0.05)
        raise HarnessError(f"{node.name} did not answer PING within 15 s; see {node.log_path}")

    def kill(self, node):
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
        if node.proc is not None:
            node.proc.wait()
        node.paused = False

    def wipe(self, node):
        self.kill(node)
        shutil.rmtree(node.data_dir, ignore_errors=True)

    def pause(self, node):
        if node.running():
            node.proc.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, node):
        if node.running():
            node.proc.send_signal(signal.SIGCONT)
        node.paused = False

    def note_exits(self, t, expected_down=()):
        """Records nodes that died without us killing them (crashes)."""
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is not None and n not in expected_down \
                    and not getattr(n.proc, "_chaos_noted", False):
                n.proc._chaos_noted = True
                last = tail(n.log_path, 30)
                # This harness only ever sends SIGKILL, SIGSTOP and SIGCONT.
                outside = re.findall(r"received signal (\d+)", last.split("==== chaos: start")[-1])
                self.unexpected_exits.append({"node": n.name, "returncode": n.proc.returncode, "t_ms": t,
                                              "cause": f"signal {outside[-1]} sent from outside this harness"
                                              if outside else "crash or exit on its own",
                                              "log_tail": last})

    def stop_all(self):
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                if n.proc.poll() is None:
                    n.proc.send_signal(signal.SIGCONT)
                    n.proc.send_signal(signal.SIGKILL)
                n.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass

    # ---- observation -------------------------------------------------------------

    def cluster_nodes(self, node):
        r = call_once(node.host, CLIENT_PORT, "CLUSTER", "NODES", timeout=2.0)
        if not isinstance(r, str) or isinstance(r, Err):
            return None
        rows = []
        for line in r.strip().splitlines():
            f = line.split()
            if len(f) >= 5:
                rows.append({"name": f[0], "peer": f[1], "client": f[2], "state": f[3], "contact": f[4]})
        return rows

    def formed(self):
        """True when every node lists every member alive (not joining) and heard from."""
        want = {n.name for n in self.nodes}
        for n in self.nodes:
            try:
                rows = self.cluster_nodes(n)
            except ConnError:
                return False
            if rows is None or {r["name"] for r in rows} != want:
                return False
            if any(r["state"] != "alive" or r["contact"] == "never" for r in rows):
                return False
        return True

    def sees_alive(self, node):
        """True when every node lists `node` alive (not joining) and heard from."""
        for n in self.nodes:
            try:
                rows = self.cluster_nodes(n)
            except ConnError:
                return False
            row = [r for r in rows or [] if r["name"] == node.name]
            if not row or row[0]["state"] != "alive" or row[0]["contact"] == "never":
                return False
        return True

    def probe_all(self):
        """A CL ALL SET through every node."""
        for n in self.nodes:
            try:
                r = call_once(n.host, CLIENT_PORT, "CL", "ALL", "SET", f"chaos:probe:{n.name}", "1", timeout=3.0)
            except ConnError:
                return False
            if r != "OK":
                return False
        return True

    def roots(self):
        out = {}
        for n in self.nodes:
            try:
                r = call_once(n.host, CLIENT_PORT, "INFO", "persistence", timeout=2.0)
            except ConnError:
                out[n.name] = None
                continue
            root = None
            if isinstance(r, str) and not isinstance(r, Err):
                for line in r.splitlines():
                    if line.startswith("merkle_roots:"):
                        root = line.split(":", 1)[1].strip()
            out[n.name] = root
        return out

    def wait_formed(self, seconds, probe=True):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.formed() and (not probe or self.probe_all()):
                return True
            time.sleep(0.1)
        return False


def tail(path, lines=20):
    try:
        with open(path, "rb") as f:
            data = f.read()[-20000:].decode(errors="replace")
        return "\n".join(data.splitlines()[-lines:])
    except OSError:
        return ""


def port_taken(host, port):
    try:
        call_once(host, port, "PING", timeout=0.5)
        return True
    except ConnError as e:
        return e.kind != "connect"


# ---- iptables ------------------------------------------------------------------


class Firewall:
    """Partitions between two loopback addresses: DROP rules on INPUT in our own chain."""

    def __init__(self):
        self.installed = False

    @staticmethod
    def usable():
        if os.geteuid() != 0 or shutil.which("iptables") is None:
            return False
        return sh("iptables -w -L -n").returncode == 0

    def install(self):
        if sh(f"iptables -w -L {CHAIN} -n").returncode != 0:
            sh(f"iptables -w -N {CHAIN}", check=True)
        sh(f"iptables -w -F {CHAIN}", check=True)
        if sh(f"iptables -w -C INPUT -j {CHAIN}").returncode != 0:
            sh(f"iptables -w -I INPUT -j {CHAIN}", check=True)
        if sh(f"iptables -w -C INPUT -j {CHAIN}").returncode != 0:
            raise HarnessError(f"iptables: the jump INPUT -> {CHAIN} did not go in")
        self.installed = True

    def _rules(self, a, b):
        return [f"-s {a.host} -d {b.host} -j DROP", f"-s {b.host} -d {a.host} -j DROP"]

    def partition(self, a, b):
        for r in self._rules(a, b):
            sh(f"iptables -w -A {CHAIN} {r}", check=True)
            if sh(f"iptables -w -C {CHAIN} {r}").returncode != 0:
                raise HarnessError(f"iptables: rule `{r}` is not in {CHAIN} after adding it")

    def heal(self):
        if self.installed:
            sh(f"iptables -w -F {CHAIN}", check=True)
            listing = sh(f"iptables -w -S {CHAIN}").stdout
            if "DROP" in listing:
                raise HarnessError(f"iptables: {CHAIN} still holds rules after a flush:\n{listing}")

    @staticmethod
    def remove():
        """Removes our chain entirely (idempotent; also cleans a leftover of an earlier run)."""
        for _ in range(10):
            if sh(f"iptables -w -D INPUT -j {CHAIN}").returncode != 0:
                break
        sh(f"iptables -w -F {CHAIN}")
        sh(f"iptables -w -X {CHAIN}")
