#!/usr/bin/env python3
"""The chaos checkers on hand-made histories: each anomaly is caught, each excuse holds.
Run: python3 tests/chaos/test_checker.py (ctest: chaos_checker)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checker import check_counters, check_minimum, check_registers, check_sets  # noqa: E402


def op(o, key, value, outcome="ok", level="QUORUM", node="n1", start=0.0, end=1.0, reply="1", **kw):
    return dict(worker="w", node=node, level=level, op=o, key=key, value=value, start_ms=start, end_ms=end,
                outcome=outcome, reply=reply, **kw)


class Sets(unittest.TestCase):
    def test_lost_and_resurrected(self):
        ops = [op("sadd", "s", "a"), op("sadd", "s", "b"), op("sadd", "s", "c"), op("srem", "s", "c"),
               op("sadd", "s", "d", level="ONE"), op("sadd", "s", "e", outcome="info")]
        r = check_sets(ops, {"s": ["c"]})
        self.assertEqual((r["lost"], r["resurrected"], r["lost_one"]), (2, 1, 1))  # a, b lost; c back
        self.assertFalse(r["ok"])

    def test_clean(self):
        ops = [op("sadd", "s", "a"), op("sadd", "s", "b"), op("srem", "s", "b", outcome="info"),
               op("sadd", "s", "x", outcome="fail", reply="-UNAVAILABLE")]
        r = check_sets(ops, {"s": ["a", "b"]})  # an indeterminate SREM may not have happened
        self.assertTrue(r["ok"], r)

    def test_refused_add_visible(self):
        r = check_sets([op("sadd", "s", "x", outcome="fail")], {"s": ["x"]})
        self.assertEqual(r["failed_visible"], 1)
        self.assertFalse(r["ok"])


class Counters(unittest.TestCase):
    def ops(self):
        return [op("incr", "c", 1), op("incrby", "c", 3), op("incr", "c", 1, outcome="info"),
                op("incrby", "c", 5, outcome="fail")]

    def test_bounds(self):
        for final, ok in (("4", True), ("5", True), ("3", False), ("6", False), ("9", False)):
            self.assertEqual(check_counters(self.ops(), {"c": final})["ok"], ok, final)

    def test_one_level_before_wipe_excused(self):
        ops = self.ops() + [op("incr", "c", 2, level="ONE", node="n2", end=900.0)]
        wipe = [{"kind": "wipe", "nodes": [2], "start_ms": 1000.0}]
        r = check_counters(ops, {"c": "4"}, wipe)
        self.assertTrue(r["ok"])
        self.assertEqual(r["one_lost_with_wipe"], 2)
        self.assertFalse(check_counters(ops, {"c": "4"})["ok"])  # no wipe, no excuse


class Registers(unittest.TestCase):
    def test_stale_read(self):
        ops = [op("set", "r", 1), op("set", "r", 2),
               op("get", "r", None, read="1", expect=2), op("get", "r", None, read="2", expect=2),
               op("get", "r", None, read=None, expect=1)]
        r = check_registers(ops, {"r": "2"})
        self.assertEqual((r["reads_checked"], r["stale"]), (3, 2))
        self.assertFalse(r["ok"])

    def test_indeterminate_excuse_and_final(self):
        ops = [op("set", "r", 1, outcome="info"), op("set", "r", 2), op("get", "r", None, read="1", expect=2)]
        r = check_registers(ops, {"r": "1"})
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["stale_after_indeterminate"], 2)  # the read and the final value
        r = check_registers([op("set", "r", 1), op("set", "r", 2)], {"r": "1"})
        self.assertEqual(r["final_stale"], 1)

    def test_refused_set_visible(self):
        ops = [op("set", "r", 1), op("set", "r", 2, outcome="fail"), op("get", "r", None, read="2", expect=1)]
        self.assertFalse(check_registers(ops, {"r": "1"})["ok"])


class Minimum(unittest.TestCase):
    def test_minimum(self):
        s = {"sadd_ok": 40, "srem_ok": 10}
        c = {"incr_ok": 50}
        self.assertTrue(check_minimum(s, c, {"set_ok": 50, "reads_checked": 20}, 50, 20)["ok"])
        self.assertFalse(check_minimum(s, c, {"set_ok": 49, "reads_checked": 20}, 50, 20)["ok"])
        self.assertFalse(check_minimum(s, c, {"set_ok": 50, "reads_checked": 19}, 50, 20)["ok"])


if __name__ == "__main__":
    unittest.main()
