"""Checkers over a run's history and the final reads (taken at ALL after convergence).

sets      lost: SADDs acknowledged at QUORUM/ALL, never SREM'd (no SREM attempted
          at all), absent at the end. resurrected: SREMs acknowledged at
          QUORUM/ALL whose element is present at the end. Both must be 0. The
          same counts for ONE-level operations are information only (a
          write acknowledged by one replica may die with its disk).
          failed_visible: a definitely refused SADD whose member is present at the end.
counters  per key: acked <= final <= acked + indeterminate (definite failures add nothing);
          see check_counters for the one excuse (ONE-level increments just before a wipe).
registers a QUORUM read, started after a QUORUM/ALL SET was acknowledged, through
          another node, must return that value or a later one. A smaller value
          is excused only when it is the value of one of that key's indeterminate
          SETs (an outcome the writer was never told about may still take effect
          after the acknowledged one); those are counted as information. The
          final ALL read of each QUORUM/ALL writer's key is checked the same way
          against its last acknowledged value. failed_visible: a read (or the final
          value) shows a SET that was definitely refused.
minimum   at least `min_acked` acknowledged operations of each type (sets,
          counters, registers) and `min_reads` checked reads, so a run in which
          nearly everything failed does not pass.
"""

from collections import defaultdict

STRONG = ("QUORUM", "ALL")


def as_int(v):
    if v is None:
        return 0
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def check_sets(ops, final_sets):
    sadds = [o for o in ops if o["op"] == "sadd"]
    srems = [o for o in ops if o["op"] == "srem"]
    srem_attempted = {(o["key"], o["value"]) for o in srems}
    present = {k: set(v) for k, v in final_sets.items()}
    res = {"sadd_ok": 0, "srem_ok": 0, "lost": 0, "resurrected": 0, "lost_one": 0, "resurrected_one": 0,
           "srem_removed_nothing": 0, "failed_visible": 0, "lost_examples": [], "resurrected_examples": [],
           "failed_visible_examples": []}
    for o in sadds:
        if o["outcome"] != "ok":
            continue
        res["sadd_ok"] += 1
        if (o["key"], o["value"]) in srem_attempted or o["value"] in present.get(o["key"], set()):
            continue
        if o["level"] in STRONG:
            res["lost"] += 1
            if len(res["lost_examples"]) < 10:
                res["lost_examples"].append(o)
        else:
            res["lost_one"] += 1
    for o in sadds:
        if o["outcome"] == "fail" and o["value"] in present.get(o["key"], set()):
            res["failed_visible"] += 1
            if len(res["failed_visible_examples"]) < 10:
                res["failed_visible_examples"].append(o)
    for o in srems:
        if o["outcome"] != "ok":
            continue
        res["srem_ok"] += 1
        if o["reply"] == "0":
            res["srem_removed_nothing"] += 1
        if o["value"] not in present.get(o["key"], set()):
            continue
        if o["level"] in STRONG:
            res["resurrected"] += 1
            if len(res["resurrected_examples"]) < 10:
                sadd = [s for s in sadds if s["key"] == o["key"] and s["value"] == o["value"]]
                res["resurrected_examples"].append({"srem": o, "sadd": sadd})
        else:
            res["resurrected_one"] += 1
    res["ok"] = res["lost"] == 0 and res["resurrected"] == 0 and res["failed_visible"] == 0
    return res


WIPE_WINDOW_MS = 5000


def check_counters(ops, final_counters, faults=()):
    """acked <= final <= acked + indeterminate, per key. The one excuse: increments
    acknowledged at ONE through a node (the coordinator, with 3 nodes also the
    replica that minted them) in the WIPE_WINDOW_MS before that node's disk was
    wiped may have died with the disk before their delta left; the lower bound
    drops them, and what was actually missing is reported."""
    wipes = [(f"n{f['nodes'][0]}", f["start_ms"]) for f in faults if f["kind"] == "wipe"]
    acked, indet, failed, excusable = defaultdict(int), defaultdict(int), defaultdict(int), defaultdict(int)
    n_ok = 0
    for o in ops:
        if o["op"] not in ("incr", "incrby"):
            continue
        if o["outcome"] == "ok":
            acked[o["key"]] += o["value"]
            n_ok += 1
            if o["level"] == "ONE" and any(o["node"] == n and t - WIPE_WINDOW_MS <= o["end_ms"] <= t
                                           for n, t in wipes):
                excusable[o["key"]] += o["value"]
        elif o["outcome"] == "info":
            indet[o["key"]] += o["value"]
        else:
            failed[o["key"]] += o["value"]
    keys = {}
    ok = True
    for k, raw in sorted(final_counters.items()):
        v = as_int(raw)
        lower = acked[k] - excusable[k]
        good = v is not None and lower <= v <= acked[k] + indet[k]
        ok &= good
        keys[k] = {"acked": acked[k], "lower": lower, "final": raw, "upper": acked[k] + indet[k],
                   "indeterminate": indet[k], "definite_failures": failed[k],
                   "one_acked_before_wipe": excusable[k],
                   "one_lost_with_wipe": max(0, acked[k] - v) if v is not None and good else 0, "ok": good}
    total_v = sum(as_int(x["final"]) or 0 for x in keys.values())
    # The verdict line shows the acknowledged sum unless the excuse was needed.
    shown = sum(x["acked"] if x["one_lost_with_wipe"] == 0 else x["lower"] for x in keys.values())
    return {"ok": ok, "incr_ok": n_ok, "keys": keys, "acked_sum": sum(acked[k] for k in keys),
            "lower_sum": shown, "final_sum": total_v,
            "upper_sum": sum(acked[k] + indet[k] for k in keys),
            "one_lost_with_wipe": sum(x["one_lost_with_wipe"] for x in keys.values())}


def check_registers(ops, final_registers):
    sets_by_key = defaultdict(list)
    for o in ops:
        if o["op"] == "set":
            sets_by_key[o["key"]].append(o)
    indeterminate = {k: {o["value"] for o in v if o["outcome"] == "info"} for k, v in sets_by_key.items()}
    refused = {k: {o["value"] for o in v if o["outcome"] == "fail"} for k, v in sets_by_key.items()}
    res = {"set_ok": 0, "reads_checked": 0, "stale": 0, "stale_after_indeterminate": 0, "read_errors": 0,
           "final_stale": 0, "failed_visible": 0, "stale_examples": []}
    res["set_ok"] = sum(1 for v in sets_by_key.values() for o in v if o["outcome"] == "ok")
    for o in ops:
        if o["op"] != "get" or "expect" not in o:
            continue
        if o["outcome"] != "ok":
            res["read_errors"] += 1
            continue
        res["reads_checked"] += 1
        got = as_int(o.get("read"))
        if got in refused.get(o["key"], set()):
            res["failed_visible"] += 1
            if len(res["stale_examples"]) < 10:
                res["stale_examples"].append({"read": o, "refused_write_visible": True})
        if got is not None and got >= o["expect"]:
            continue
        if got is not None and got in indeterminate.get(o["key"], set()):
            res["stale_after_indeterminate"] += 1
            continue
        res["stale"] += 1
        if len(res["stale_examples"]) < 10:
            writes = [w for w in sets_by_key[o["key"]] if w["value"] in (o["expect"], got)]
            res["stale_examples"].append({"read": o, "writes": writes})
    final = {}
    for k, v in sets_by_key.items():
        strong_acked = [o["value"] for o in v if o["outcome"] == "ok" and o["level"] in STRONG]
        got = as_int(final_registers.get(k))
        final[k] = {"final": final_registers.get(k), "last_strong_acked": max(strong_acked, default=None)}
        if got in refused.get(k, set()):
            res["failed_visible"] += 1
        if not strong_acked or (got is not None and got >= max(strong_acked)):
            continue
        if got is not None and got in indeterminate.get(k, set()):
            res["stale_after_indeterminate"] += 1
            continue
        res["final_stale"] += 1
    res["final"] = final
    res["ok"] = res["stale"] == 0 and res["final_stale"] == 0 and res["failed_visible"] == 0
    return res


def check_minimum(sets, counters, registers, min_acked, min_reads):
    got = {"sets": sets["sadd_ok"] + sets["srem_ok"], "counters": counters["incr_ok"],
           "registers": registers["set_ok"], "reads": registers["reads_checked"]}
    ok = all(got[t] >= min_acked for t in ("sets", "counters", "registers")) and got["reads"] >= min_reads
    return {"ok": ok, "acked": got, "min_acked": min_acked, "min_reads": min_reads}
