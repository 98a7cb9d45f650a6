#!/usr/bin/env python3
"""Jepsen-style chaos runs against a real 3-node latticed cluster on loopback.

  tests/chaos/chaos.py [--runs N] [--seconds S] [--seed X] [--nodes 3] [--out DIR]
  (normally through scripts/chaos.sh; LATTICED names the binary)

Each run starts its own cluster on 127.0.0.51-53 (client port 7379, peer port
17379, data and logs under OUT/run-K/), waits until it is formed, then for S
seconds runs client workers (sets, counters, registers at ONE, QUORUM and ALL,
plus a reader checking QUORUM reads after acknowledged QUORUM writes) while a
nemesis driven by one seeded generator partitions two nodes (iptables chain
LATTICE_CHAOS on INPUT), kills -9 and restarts a node, pauses one
(SIGSTOP/SIGCONT) or wipes one's data directory. Faults run one at a time (so
at most one node is down, paused or rebuilding). Afterwards everything is
healed, the cluster must be formed again and every node's merkle_roots equal
within CONVERGE_S seconds; then the checkers (checker.py) judge the history.
Writes OUT/run-K/history.json and report.json, prints one verdict line per run
and "N passed, M failed". Exit 0 only if every run passed; 77 when not root or
iptables is unusable (skipped); 2 on bad usage.
Run K uses seed X+K-1 (random X if not given): `--seed <seed> --runs 1` replays
a run's fault schedule and workers' choices (timings are real, so not the
interleaving).
"""

import argparse
import atexit
import fcntl
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checker import check_counters, check_minimum, check_registers, check_sets  # noqa: E402
from cluster import CHAIN, CLIENT_PORT, PEER_PORT, Cluster, Firewall, HarnessError, addr, port_taken  # noqa: E402
from resp import ConnError, Conn, Err  # noqa: E402
from workload import (COUNTER_KEYS, LEVELS, SET_KEYS, CounterWorker, History, RegisterReader,  # noqa: E402
                      RegisterWriter, SetWorker)

FORM_S = 60        # a fresh cluster must be formed (and a CL ALL SET pass) within this
REJOIN_S = 30      # a wiped node must be alive again within this before the next fault
CONVERGE_S = 60    # after healing: formed again and all merkle_roots equal within this
FAULTS = ("partition", "kill", "pause", "wipe")

_cleanups = []


def cleanup_all():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning
            print(f"chaos: cleanup step failed: {e}", file=sys.stderr)


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def min_acked_for(seconds):
    return max(10, int(2.5 * seconds))   # 50 in a 20 s run


def min_reads_for(seconds):
    return max(5, int(1.0 * seconds))    # 20 in a 20 s run


def schedule(seed, seconds, n):
    """The fault schedule: planned start (s after the workers start), kind, nodes, duration.

    Kinds come in shuffled rounds of all four, so a run of 20 s sees each.
    """
    rng = random.Random(seed)
    events, t, bag = [], rng.uniform(1.0, 2.0), []
    while t < seconds - 1.0:
        if not bag:
            bag = list(FAULTS)
            rng.shuffle(bag)
        kind = bag.pop()
        nodes = sorted(rng.sample(range(1, n + 1), 2)) if kind == "partition" else [rng.randint(1, n)]
        # Partitions outlast failure detection (a peer is unreachable after 2 s unheard).
        dur = round(rng.uniform(2.5, 6.0) if kind == "partition" else rng.uniform(1.5, 4.0), 2)
        events.append({"at_s": round(t, 2), "kind": kind, "nodes": nodes, "duration_s": dur})
        t += dur + rng.uniform(0.5, 1.5)
    return events


class Nemesis:
    """Applies the schedule from the main thread (processes are started only there)."""

    def __init__(self, cluster, firewall, history, end_at):
        self.cluster, self.fw, self.history, self.end_at = cluster, firewall, history, end_at
        self.down = set()  # nodes we killed and not yet restarted
        self.log = []

    def _sleep_until(self, t):
        while True:
            left = t - time.monotonic()
            self.cluster.note_exits(self.history.now(), self.down)
            if left <= 0:
                return
            time.sleep(min(left, 0.2))

    def run(self, events, t0):
        for ev in events:
            start = max(t0 + ev["at_s"], time.monotonic())
            if start >= self.end_at:
                break
            self._sleep_until(start)
            nodes = [self.cluster.nodes[i - 1] for i in ev["nodes"]]
            rec = dict(ev, start_ms=self.history.now())
            log(f"fault {ev['kind']} {'/'.join(n.name for n in nodes)} for {ev['duration_s']} s")
            if ev["kind"] == "partition":
                self.fw.partition(*nodes)
            elif ev["kind"] == "pause":
                self.cluster.pause(nodes[0])
            elif ev["kind"] == "kill":
                self.cluster.kill(nodes[0])
                self.down.add(nodes[0])
            elif ev["kind"] == "wipe":
                self.cluster.wipe(nodes[0])
                self.down.add(nodes[0])
            self._sleep_until(min(time.monotonic() + ev["duration_s"], self.end_at))
            if ev["kind"] == "partition":
                self.fw.heal()
            elif ev["kind"] == "pause":
                self.cluster.resume(nodes[0])
            else:
                self.cluster.start_node(nodes[0], first_start=False)
                self.down.discard(nodes[0])
            rec["end_ms"] = self.history.now()
            if ev["kind"] == "wipe":
                # At most one node rebuilding at a time: the next fault waits for it.
                deadline = min(time.monotonic() + REJOIN_S, self.end_at)
                while time.monotonic() < deadline and not self.cluster.sees_alive(nodes[0]):
                    self.cluster.note_exits(self.history.now(), self.down)
                    time.sleep(0.1)
                rec["rejoined"] = self.cluster.sees_alive(nodes[0])
                rec["rejoined_ms"] = self.history.now()
            self.log.append(rec)
        self._sleep_until(self.end_at)


def final_read(cluster, args, seconds=15):
    """CL ALL read, retried through each node in turn until it answers."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        for n in cluster.nodes:
            try:
                c = Conn(n.host, CLIENT_PORT, timeout=3.0)
                try:
                    r = c.call("CL", "ALL", *args)
                finally:
                    c.close()
            except ConnError as e:
                last = e
                continue
            if not isinstance(r, Err):
                return r
            last = r
        time.sleep(0.2)
    raise HarnessError(f"final read {' '.join(args)} at ALL failed: {last}")


def one_run(k, runs, seed, seconds, binary, out_dir, keep_data):
    run_dir = os.path.join(out_dir, f"run-{k}")
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    events = schedule(seed, seconds, 3)
    log(f"run {k}/{runs} seed={seed} in {run_dir}; faults planned: "
        + ", ".join(f"{e['kind']}({','.join(map(str, e['nodes']))})@{e['at_s']}s" for e in events))
    report = {"run": k, "runs": runs, "seed": seed, "seconds": seconds, "binary": binary, "dir": run_dir,
              "planned_faults": events, "bounds": {"form_s": FORM_S, "rejoin_s": REJOIN_S, "converge_s": CONVERGE_S,
                                                   "min_acked_per_type": min_acked_for(seconds),
                                                   "min_reads_checked": min_reads_for(seconds)}}
    problems = []
    cluster = Cluster(binary, run_dir)
    fw = Firewall()
    _cleanups.append(Firewall.remove)
    _cleanups.append(cluster.stop_all)
    history = None
    try:
        for n in cluster.nodes:
            for port in (CLIENT_PORT, PEER_PORT):
                if port_taken(n.host, port):
                    raise HarnessError(f"something already listens on {n.host}:{port}")
        fw.install()
        report["formation"] = "symmetric (--bootstrap-expect)" if cluster.symmetric else "node 1 founds, others seed it"
        t_form = time.monotonic()
        for n in cluster.nodes:
            cluster.start_node(n, first_start=True)
        if not cluster.wait_formed(FORM_S):
            raise HarnessError(f"cluster not formed within {FORM_S} s (CLUSTER NODES: "
                               f"{[cluster.cluster_nodes(n) for n in cluster.nodes]})")
        report["formed_in_s"] = round(time.monotonic() - t_form, 2)
        log(f"cluster formed in {report['formed_in_s']} s ({report['formation']})")

        t0 = time.monotonic()
        history = History(t0)
        stop = threading.Event()
        reader = RegisterReader("reader", "reader", "QUORUM", 0, cluster, history, stop, seed)
        workers = [reader]
        for j, level in enumerate(LEVELS):
            workers.append(SetWorker(f"set-{level.lower()}", "set", level, j % 3, cluster, history, stop, seed))
            workers.append(CounterWorker(f"ctr-{level.lower()}", "counter", level, (j + 1) % 3, cluster, history,
                                         stop, seed))
            workers.append(RegisterWriter(f"reg-{level.lower()}", "register", level, (j + 2) % 3, cluster, history,
                                          stop, seed, reader=reader))
        for w in workers:
            w.start()
        nemesis = Nemesis(cluster, fw, history, t0 + seconds)
        try:
            nemesis.run(events, t0)
        finally:
            report["faults"] = nemesis.log
            stop.set()
            for w in workers:
                w.join(timeout=15)
        report["workload_ms"] = history.now()
        for w in workers:
            if w.is_alive():
                problems.append(f"harness: worker {w.wid} did not stop")
            if w.error:
                problems.append(f"harness: {w.error}")

        # Heal everything, restart what is down, then wait for convergence.
        fw.heal()
        for n in cluster.nodes:
            cluster.resume(n)
        cluster.note_exits(history.now(), nemesis.down)
        for n in cluster.nodes:
            if not n.running():
                cluster.start_node(n, first_start=False)
        t_heal = time.monotonic()
        formed = cluster.wait_formed(CONVERGE_S, probe=False)
        roots = {}
        converged = False
        while formed and time.monotonic() < t_heal + CONVERGE_S:
            roots = cluster.roots()
            if None not in roots.values() and len(set(roots.values())) == 1:
                converged = True
                break
            time.sleep(0.1)
        conv_s = round(time.monotonic() - t_heal, 2)
        report["convergence"] = {"ok": converged, "seconds": conv_s, "bound_s": CONVERGE_S, "formed": formed,
                                 "roots": roots or cluster.roots()}
        if not converged:
            report["convergence"]["cluster_nodes"] = {n.name: cluster.cluster_nodes(n) for n in cluster.nodes
                                                      if n.running()}
        log(f"convergence: {'roots equal' if converged else 'NOT converged'} after {conv_s} s")

        final_sets = {k: final_read(cluster, ["SMEMBERS", k]) or [] for k in SET_KEYS}
        final_counters = {k: final_read(cluster, ["GET", k]) for k in COUNTER_KEYS}
        reg_keys = sorted({w.key for w in workers if isinstance(w, RegisterWriter)})
        final_regs = {k: final_read(cluster, ["GET", k]) for k in reg_keys}
        ops = history.ops
        sets = check_sets(ops, final_sets)
        counters = check_counters(ops, final_counters, report["faults"])
        registers = check_registers(ops, final_regs)
        minimum = check_minimum(sets, counters, registers, min_acked_for(seconds), min_reads_for(seconds))
        outcomes = {}
        for o in ops:
            outcomes.setdefault(o["op"], {}).setdefault(o["level"], {"ok": 0, "fail": 0, "info": 0})[o["outcome"]] += 1
        report.update(sets=sets, counters=counters, registers=registers, minimum=minimum, outcomes=outcomes,
                      connect_failures=history.connect_failures,
                      final_set_sizes={k: len(v) for k, v in final_sets.items()})
        cluster.note_exits(history.now())
        report["unexpected_exits"] = cluster.unexpected_exits
        if cluster.unexpected_exits:
            problems.append("node exited unexpectedly: " + ", ".join(
                f"{e['node']} rc={e['returncode']} at {e['t_ms']} ms ({e['cause']})" for e in cluster.unexpected_exits))
        failed = [name for name, c in (("sets", sets), ("counters", counters), ("registers", registers),
                                       ("convergence", report["convergence"]), ("minimum", minimum)) if not c["ok"]]
        if failed:
            problems.append("failed: " + ", ".join(failed))
        refused_seen = sets["failed_visible"] + registers["failed_visible"]
        summary = (f"sets lost={sets['lost']} resurrected={sets['resurrected']}, "
                   f"counters {'ok' if counters['ok'] else 'BAD'} "
                   f"{counters['lower_sum']}<={counters['final_sum']}<={counters['upper_sum']}, "
                   f"reads stale={registers['stale'] + registers['final_stale']}, "
                   + (f"refused writes visible={refused_seen}, " if refused_seen else "")
                   + (f"converged in {conv_s} s" if converged else f"NOT converged within {CONVERGE_S} s")
                   + f"; acked sets={minimum['acked']['sets']} counters={minimum['acked']['counters']} "
                     f"registers={minimum['acked']['registers']} reads={minimum['acked']['reads']}; "
                     f"faults={len(report['faults'])}")
        info = {"ONE-level sets lost": sets["lost_one"], "ONE-level sets resurrected": sets["resurrected_one"],
                "ONE-level increments lost with a wipe": counters["one_lost_with_wipe"],
                "reads older than acked but = an indeterminate SET": registers["stale_after_indeterminate"],
                "SREMs that removed nothing": sets["srem_removed_nothing"]}
        info = {k: v for k, v in info.items() if v}
        report["information"] = info
        if info:
            summary += "; info: " + ", ".join(f"{k}={v}" for k, v in info.items())
    except HarnessError as e:
        problems.append(f"harness: {e}")
        summary = f"harness error: {e}".splitlines()[0]
    except Exception:
        problems.append("harness: " + traceback.format_exc())
        summary = "harness exception: " + traceback.format_exc().strip().splitlines()[-1]
    finally:
        cluster.stop_all()
        try:
            Firewall.remove()
        except Exception as e:
            problems.append(f"harness: removing chain {CHAIN}: {e}")
        for fn in (cluster.stop_all, Firewall.remove):
            if fn in _cleanups:
                _cleanups.remove(fn)
        report["problems"] = problems
        report["verdict"] = "PASS" if not problems else "FAIL"
        if history is not None:
            with open(os.path.join(run_dir, "history.json"), "w") as f:  # one operation per line
                f.write("[\n" + ",\n".join(json.dumps(o, sort_keys=True) for o in history.ops) + "\n]\n")
        with open(os.path.join(run_dir, "report.json"), "w") as f:
            json.dump(report, f, indent=2, default=str)
    ok = not problems
    if ok and not keep_data:
        for n in cluster.nodes:
            shutil.rmtree(n.data_dir, ignore_errors=True)
    line = f"chaos run {k}/{runs} seed={seed}: {'PASS' if ok else 'FAIL'} ({summary})"
    if not ok:
        for p in problems:
            print(f"  {p}", flush=True)
        print(f"  details: {run_dir}/report.json, history: {run_dir}/history.json", flush=True)
    print(line, flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description="Chaos runs against a 3-node latticed cluster on 127.0.0.51-53.")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--seed", type=int, default=None, help="seed of run 1 (run K uses seed+K-1)")
    ap.add_argument("--nodes", type=int, default=3, help="only 3 is supported")
    ap.add_argument("--out", default=None, help="output directory (default: a new temporary one)")
    ap.add_argument("--keep-data", action="store_true", help="keep the nodes' data directories of passing runs")
    a = ap.parse_args()
    if a.nodes != 3:
        ap.error("--nodes: only 3 nodes are supported (127.0.0.51-53)")
    if a.runs < 1 or a.seconds < 5:
        ap.error("--runs must be >= 1 and --seconds >= 5")
    binary = os.path.abspath(os.environ.get("LATTICED") or
                             os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/node/latticed"))
    if not os.access(binary, os.X_OK):
        print(f"chaos: no latticed binary at {binary} (set LATTICED)", file=sys.stderr)
        return 1
    if os.geteuid() != 0 or not Firewall.usable():
        print("chaos: skipped: needs root and a usable iptables (partitions)", file=sys.stderr)
        return 77
    lock = open("/tmp/lattice-chaos.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("chaos: another chaos run holds /tmp/lattice-chaos.lock (127.0.0.51-53 are in use)", file=sys.stderr)
        return 1
    out = a.out or tempfile.mkdtemp(prefix="lattice-chaos.")
    os.makedirs(out, exist_ok=True)
    out = os.path.abspath(out)
    seed0 = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 2**31)

    atexit.register(cleanup_all)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    # Every node of every run uses this copy, so a rebuild meanwhile changes nothing.
    copy = os.path.join(out, "latticed")
    shutil.copy2(binary, copy)
    log(f"using a copy of {binary} (built {time.ctime(os.path.getmtime(binary))}) at {copy}")
    binary = copy
    Firewall.remove()  # a leftover chain of an earlier, killed run
    log(f"output in {out}; seeds {seed0}..{seed0 + a.runs - 1}; {a.seconds:g} s per run; binary {binary}")
    passed = failed = 0
    try:
        for k in range(1, a.runs + 1):
            if one_run(k, a.runs, seed0 + k - 1, a.seconds, binary, out, a.keep_data):
                passed += 1
            else:
                failed += 1
    except KeyboardInterrupt:
        print("chaos: interrupted; cleaning up", file=sys.stderr)
        cleanup_all()
        print(f"{passed} passed, {failed + 1} failed", flush=True)
        return 130
    finally:
        cleanup_all()
    if failed == 0 and not a.keep_data:
        os.remove(binary)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
