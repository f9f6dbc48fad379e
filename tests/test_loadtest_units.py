"""loadtest/: attribution outcomes, option validation, record shipping and the live verdict (no processes)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import pytest

from splitproof.loadtest.ending import RESTARTED, RUN_TIME_LIMIT, STOP_ON_VERDICT, STOPPED, is_run_time_stop
from splitproof.loadtest.live import UNATTRIBUTED, LiveSplit
from splitproof.loadtest.options import SHOPPER_TASKS, UsageError, config_from_options, parse_think_time
from splitproof.loadtest.recording import REPORT_KEY, SplitRecorder, open_results
from splitproof.verifier.inputs.attribution import Attribution
from splitproof.verifier.inputs.classify import NO_SECTION_FAILURE, grpc_reply_outcome, product_page_outcome
from splitproof.verifier.inputs.records import ReadStats, Record, read_records
from splitproof.verifier.stats.fixed import judge


def page(items: int | None, ad: bool = True) -> str:
    """A product page shaped like the frontend's: an ad linking to a product, then the section (if any)."""
    ad_html = '<div class="ad"><a href="/product/OLJCESPC7Z">Ad</a></div>' if ad else ""
    if items is None:
        return f"<html><body>{ad_html}<footer></footer></body></html>"
    cards = "".join(f'<div class="col-md-3"><a href="/product/X{i}">x</a></div>' for i in range(items))
    return (f'<html><body><div class="col-md-3">not a recommendation</div>{ad_html}'
            f'<section class="recommendations"><h2>You May Also Like</h2>{cards}</section></body></html>')


ATTR = Attribution()


# --------------------------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(("items", "version"), [(4, "production"), (2, "canary")])
def test_product_page_counts_inside_the_section_only(items: int, version: str) -> None:
    outcome = product_page_outcome(200, page(items), ATTR)
    assert (outcome.items, outcome.version, outcome.status, outcome.failure) == (items, version, "ok", None)


def test_missing_section_is_a_named_failure_and_unattributed() -> None:
    outcome = product_page_outcome(200, page(None), ATTR)
    assert outcome.version is None and outcome.items is None
    assert outcome.status == "error:no_recommendations"
    assert outcome.failure == NO_SECTION_FAILURE


def test_unexpected_count_is_unattributable_not_a_version() -> None:
    outcome = product_page_outcome(200, page(3), ATTR)
    assert outcome.version is None and outcome.items == 3 and outcome.status == "ok"
    assert outcome.failure is not None and outcome.failure.startswith("unattributable: 3 recommendations")


@pytest.mark.parametrize(("status", "cause"), [(503, "error:http_503"), (500, "error:http_500"),
                                               (0, "error:connection"), (None, "error:connection")])
def test_http_errors_are_unattributed_records(status: int | None, cause: str) -> None:
    outcome = product_page_outcome(status, page(4), ATTR)  # a body never rescues an error status
    assert (outcome.version, outcome.items, outcome.status) == (None, None, cause)
    assert outcome.failure


def test_grpc_replies() -> None:
    assert grpc_reply_outcome(["a"] * 5, None, ATTR).version == "production"
    assert grpc_reply_outcome(["a"] * 2, None, ATTR).version == "canary"
    four = grpc_reply_outcome(["a"] * 4, None, ATTR)  # 4 is a product page's production count, not gRPC's
    assert four.version is None and four.failure and four.status == "ok"
    err = grpc_reply_outcome(None, "UNAVAILABLE", ATTR)
    assert (err.version, err.items, err.status, err.failure) == (None, None, "error:UNAVAILABLE", "UNAVAILABLE")


def test_outcome_record_is_the_verifier_format() -> None:
    rec = product_page_outcome(200, page(2), ATTR).record(1700000000.5, 3.25, source="ShopperUser")
    obj = json.loads(rec.to_json())
    assert obj == {"v": 1, "t": 1700000000.5, "channel": "http", "items": 2, "version": "canary", "status": "ok",
                   "latency_ms": 3.25, "source": "ShopperUser"}


# ---------------------------------------------------------------------------------------------- options


def opts(**kw: object) -> Namespace:
    return Namespace(**kw)


def test_defaults_without_any_option() -> None:
    cfg = config_from_options(opts())
    assert cfg.expected is None and cfg.results_path is None and cfg.grpc_target is None
    assert cfg.think_time == (0.0, 0.0) and cfg.shopper_tasks is None
    assert config_from_options(None) == cfg


def test_expected_and_weights() -> None:
    assert dict(config_from_options(opts(expected="20")).expected) == {"production": 0.8, "canary": 0.2}
    cfg = config_from_options(opts(weights="production=50,canary=50", tolerance="2", alpha="0.05",
                                   max_unattributed="0.5"))
    assert dict(cfg.expected) == {"production": 0.5, "canary": 0.5}
    assert (cfg.tolerance, cfg.alpha, cfg.max_unattributed) == (0.02, 0.05, 0.005)  # fractions, as the API's


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"expected": "150"}, "--expected"),
    ({"expected": "abc"}, "--expected"),
    ({"expected": "20", "weights": "production=80,canary=20"}, "not both"),
    ({"weights": "production=80,canary=30"}, "--weights"),
    ({"weights": "production=80,v3=20"}, "v3"),  # no response can be attributed to v3
    ({"alpha": "0"}, "--alpha"),
    ({"alpha": "0.7"}, "--alpha"),
    ({"tolerance": "nan"}, "--tolerance"),
    ({"max_unattributed": "-1"}, "--max-unattributed"),
    ({"stop_on_verdict": True}, "--stop-on-verdict"),
    ({"grpc_target": "localhost"}, "--grpc-target"),
    ({"grpc_target": "h:99999"}, "--grpc-target"),
    ({"shopper_tasks": "browse=3"}, "--shopper-tasks"),
    ({"shopper_tasks": "index=x"}, "--shopper-tasks"),
    ({"shopper_tasks": ",".join(f"{k}=0" for k in SHOPPER_TASKS)}, "positive"),
    ({"think_time": "2:1"}, "--think-time"),
    ({"html_class": ["canary"]}, "NAME=COUNT"),
])
def test_bad_options_are_one_line_usage_errors(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        config_from_options(opts(**kw))
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_class_overrides_make_a_third_version_attributable() -> None:
    cfg = config_from_options(opts(weights="production=60,canary=30,v3=10",
                                   html_class=["production=4", "canary=2", "v3=3"]))
    assert cfg.attribution.attribute("http", 3) == "v3"
    assert cfg.attribution.attribute("grpc", 5) == "production"  # gRPC keeps its defaults


def test_shopper_tasks_and_think_time() -> None:
    cfg = config_from_options(opts(shopper_tasks="browseProduct=5, index=0", grpc_target="127.0.0.1:8080",
                                   think_time="0.5:2"))
    assert cfg.shopper_tasks == {**SHOPPER_TASKS, "browseProduct": 5, "index": 0}
    assert cfg.grpc_target == "127.0.0.1:8080" and cfg.think_time == (0.5, 2.0)
    assert parse_think_time("1") == (1.0, 1.0) and parse_think_time("") == (0.0, 0.0)


def in_fresh_interpreter(code: str) -> None:
    """Run ``code`` in a child Python: importing the locustfile imports Locust, which gevent-monkey-patches the
    whole process (threads become greenlets) -- that must never leak into the rest of the test session."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_product_ids_are_the_catalogs() -> None:
    in_fresh_interpreter("""
        from splitproof.loadtest.boutique import PRODUCT_IDS
        from splitproof.setup.boutique.catalog import PRODUCT_IDS as CATALOG_IDS

        assert sorted(PRODUCT_IDS) == sorted(CATALOG_IDS) and len(PRODUCT_IDS) == 9, PRODUCT_IDS
    """)


def test_think_time_is_each_users_own_setting() -> None:
    """--think-time MIN:MAX: a uniform wait in [MIN, MAX] after every task, exactly MIN when they are equal -- read
    from the user's own session (each user keeps it: Locust asks after every task)."""
    in_fresh_interpreter("""
        import types
        from argparse import Namespace

        from splitproof.loadtest import plugin
        from splitproof.loadtest.options import config_from_options
        from splitproof.loadtest.recording import SplitRecorder

        def user(spec):
            config = config_from_options(Namespace(think_time=spec))
            return types.SimpleNamespace(_splitproof_session=plugin.SplitSession(config, SplitRecorder("local")))

        ranged, fixed, none = user("0.5:2"), user("1.5"), user("")
        waits = [plugin.think_time(ranged) for _ in range(200)]
        assert all(0.5 <= w <= 2.0 for w in waits) and len(set(waits)) > 100, waits[:5]
        assert [plugin.think_time(fixed) for _ in range(3)] == [1.5] * 3
        assert plugin.think_time(none) == 0.0 and plugin.think_time(ranged) >= 0.5
    """)


def test_shopper_task_weights_replace_the_task_table() -> None:
    in_fresh_interpreter("""
        from splitproof.loadtest.boutique import ShopperUser
        from splitproof.loadtest.options import SHOPPER_TASKS

        saved = list(ShopperUser.tasks)
        assert len(saved) == sum(SHOPPER_TASKS.values()), saved  # the upstream load generator's weights by default
        ShopperUser.apply_task_weights({**dict.fromkeys(SHOPPER_TASKS, 0), "browseProduct": 3, "viewCart": 1})
        names = sorted(t.__name__ for t in ShopperUser.tasks)
        assert names == ["browse_product"] * 3 + ["view_cart"], names
    """)


def test_the_test_session_itself_is_not_monkey_patched() -> None:
    import threading

    assert "gevent" not in sys.modules and "locust" not in sys.modules
    assert threading.Thread.__module__ == "threading"


# ------------------------------------------------------------------------------------------- recording


def rec(version: str | None, status: str = "ok", items: int | None = None) -> Record:
    if items is None and status == "ok":
        items = {"production": 5, "canary": 2}.get(version or "", 3)
    return Record(1700000000.0, "grpc", items, version, status, 1.5, "RecommendationUser")


def test_worker_batches_reach_the_master_file_exactly(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    master = SplitRecorder("master", open_results(out, append=False))
    seen: list[tuple[str | None, str | None]] = []
    master.observers.append(lambda version, cause: seen.append((version, cause)))
    workers = [SplitRecorder("worker"), SplitRecorder("worker")]
    sent = [rec("production"), rec("canary"), rec(None, "error:UNAVAILABLE"), rec(None), rec("production")]
    for i, r in enumerate(sent):
        workers[i % 2].add(r)
    assert workers[0].pending == 3 and workers[1].pending == 2
    for w in workers:
        report: dict[str, object] = {"stats": []}
        w.drain_into(report)
        assert REPORT_KEY in report and w.pending == 0
        master.receive(report)
        empty: dict[str, object] = {}
        w.drain_into(empty)
        assert empty == {}  # nothing twice
    master.close()
    stats = ReadStats()
    got = list(read_records(out, stats))
    assert stats.malformed == stats.truncated == 0
    assert sorted(r.to_json() for r in got) == sorted(r.to_json() for r in sent)
    assert master.received == 5
    versions = [v for v, _ in seen]
    causes = [c for v, c in seen if v is None]
    assert sorted(map(str, versions)) == sorted(["production", "canary", "None", "None", "production"])
    assert sorted(causes) == ["error:UNAVAILABLE", "grpc reply with 3 items"]  # named: every unattributed one
    assert all(c is None for v, c in seen if v is not None)


def test_results_file_is_fresh_unless_append(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.jsonl"
    for append, expected_lines in ((False, 1), (True, 2), (False, 1)):
        recorder = SplitRecorder("local", open_results(out, append=append))
        recorder.add(rec("canary"))
        recorder.close()
        assert len(out.read_text().splitlines()) == expected_lines


def test_local_record_is_on_disk_before_the_next_one(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    recorder = SplitRecorder("local", open_results(out, append=False))
    recorder.add(rec("canary"))
    assert out.read_text().count("\n") == 1  # flushed per record: a SIGKILL now keeps it
    recorder.close()


# ------------------------------------------------------------------------------------------- live split


def feed(live: LiveSplit, shares: dict[str | None, float], n: int, seed: int) -> dict[str | None, int]:
    rng = random.Random(seed)
    names = list(shares)
    drawn = rng.choices(names, weights=[shares[k] for k in names], k=n)
    for start in range(0, n, 97):  # batches, as from worker reports
        batch = drawn[start:start + 97]
        live.observe(batch, ["error:UNAVAILABLE" for v in batch if v is None])
    return {k: drawn.count(k) for k in names}


def test_final_verdict_is_verify_splits_fixed_n_judge() -> None:
    cfg = config_from_options(opts(expected="20"))
    live = LiveSplit(cfg)
    drawn = feed(live, {"production": 0.8, "canary": 0.2}, 3000, seed=7)
    verdict = live.final_verdict()
    same = judge({"production": drawn["production"], "canary": drawn["canary"]}, 0, cfg.expected)
    assert verdict.method == "fixed-n" and verdict.outcome == same.outcome == "PASS"
    assert (verdict.n, verdict.rows) == (same.n, same.rows)
    assert live.exit_code(verdict) == 0


def test_misroute_fails_and_unattributed_counts_with_causes() -> None:
    live = LiveSplit(config_from_options(opts(expected="20")))
    drawn = feed(live, {"production": 0.49, "canary": 0.49, None: 0.02}, 1500, seed=3)
    verdict = live.final_verdict()
    assert verdict.outcome == "FAIL" and live.exit_code(verdict) == 1
    assert verdict.unattributed == drawn[None] == verdict.unattributed_causes["error:UNAVAILABLE"]
    rows = {r["version"]: r for r in live.rows()}
    assert rows[UNATTRIBUTED]["count"] == drawn[None]
    assert rows["canary"]["count"] == drawn["canary"] and rows["canary"]["expected"] == "20%"


def test_too_few_samples_is_inconclusive() -> None:
    live = LiveSplit(config_from_options(opts(expected="20")))
    feed(live, {"production": 0.8, "canary": 0.2}, 40, seed=1)
    verdict = live.final_verdict()
    assert verdict.outcome == "INCONCLUSIVE" and live.exit_code(verdict) == 3
    assert not live.decided and "undecided" in live.console_line()


def test_a_run_stopped_by_a_person_is_judged_sequentially() -> None:
    """Ctrl-C / web UI Stop while watching the live shares: a fixed-n test there would be peeking."""
    cfg = config_from_options(opts(expected="20"))
    live = LiveSplit(cfg)
    drawn = feed(live, {"production": 0.8, "canary": 0.2}, 3000, seed=7)
    for why, note in ((STOPPED, "stopped by a person"), (RESTARTED, "several tests")):
        early = live.final_verdict(why)
        assert early.method == "sequential" and any(note in n for n in early.notes), early.notes
        assert early == replace(live.gate.verdict(), notes=early.notes, unattributed_causes=early.unattributed_causes)
    full = live.final_verdict(RUN_TIME_LIMIT)
    assert full.method == "fixed-n" and full.n == drawn["production"] + drawn["canary"] and not full.notes
    assert live.final_verdict(STOP_ON_VERDICT).method == "sequential"


MAIN_TIMER = ("locust.main", "stop_and_optionally_quit", {"reason": "--run-time limit reached"})


@pytest.mark.parametrize("frames, timer", [
    # Locust's headless/--autostart -t timer: main.stop_and_optionally_quit -> runner.quit -> stop -> our listener
    ([("splitproof.loadtest.plugin", "_on_test_stopping", {}), ("locust.event", "fire", {}),
      ("locust.runners", "stop", {}), ("locust.runners", "quit", {}), MAIN_TIMER], True),
    # the web UI form's run time
    ([("locust.runners", "stop", {}), ("locust.web", "_stop_runners", {})], True),
    # a shape class finishing goes through the same function with another reason: not a -t limit
    ([("locust.main", "stop_and_optionally_quit", {"reason": "Shape test completed"})], False),
    # Ctrl-C / SIGTERM (our quitting listener stops the runner), the web UI's Stop button, --stop-on-verdict
    ([("locust.runners", "quit", {}), ("splitproof.loadtest.plugin", "_on_quitting", {}), ("locust.main", "shutdown",
                                                                                           {})], False),
    ([("locust.runners", "stop", {}), ("locust.web", "stop", {})], False),
    ([("locust.runners", "quit", {}), ("gevent.greenlet", "run", {})], False),
])
def test_the_stack_tells_whether_locusts_run_time_timer_stopped_the_test(frames, timer) -> None:
    assert is_run_time_stop(frames) is timer


def test_stop_on_verdict_uses_the_sequential_gate() -> None:
    live = LiveSplit(config_from_options(opts(expected="20", stop_on_verdict=True)))
    feed(live, {"production": 0.5, "canary": 0.5}, 600, seed=11)
    assert live.decided and live.sequential_outcome() == "FAIL"
    verdict = live.final_verdict()
    assert verdict.method == "sequential" and verdict.outcome == "FAIL"
    snap = live.snapshot()
    assert snap["decided"] and snap["sequential"] == "FAIL" and "FAIL" in snap["status"]
    json.dumps(snap)  # the web UI serves it as JSON


def test_health_judges_the_records_and_sets_the_exit_code() -> None:
    """--health --version-header: the records feed the live (sequential) and the final (fixed-n) health judges;
    the exit code is the gate's -- FAIL on the canary's errors although the split PASSes."""
    cfg = config_from_options(opts(expected="20", health=True, version_header="X-Version"))
    assert cfg.health is not None and cfg.attribution.header == "x-version"
    live = LiveSplit(cfg)
    rng = random.Random(4)
    for i in range(3000):
        version = "canary" if rng.random() < 0.2 else "production"
        failed = version == "canary" and rng.random() < 0.05
        rec = Record(float(i), "grpc", None if failed else 5, version, "error:INTERNAL" if failed else "ok",
                     rng.uniform(2, 5), by="header")
        live.observe_records([rec])
        live.observe([version], [])
    verdict = live.final_verdict()
    assert verdict.outcome == "PASS" and live.health_verdict.outcome == "FAIL"
    assert live.health_verdict.method == "fixed-n" and live.exit_code(verdict) == 1
    rows = {r["version"]: r for r in live.rows()}
    assert "FAIL" in rows["health"]["interval"] and "health: canary errors" in rows
    assert live.decided  # the sequential judges decided too: --stop-on-verdict would have stopped


def test_health_options_are_checked() -> None:
    with pytest.raises(UsageError, match="--health needs the expected split"):
        config_from_options(opts(health=True))
    with pytest.raises(UsageError, match="--max-error-increase only apply with --health"):
        config_from_options(opts(expected="20", max_error_increase="2"))
    with pytest.raises(UsageError, match="--max-error-increase must be in"):
        config_from_options(opts(expected="20", health=True, max_error_increase="0"))


def test_a_written_record_survives_sigkill_at_once(tmp_path: Path) -> None:
    """RecordWriter hands each line to the OS before write() returns: a process SIGKILLed right after writing
    keeps every line it wrote, complete (the guarantee the Locust file's results rest on)."""
    import subprocess
    import sys

    out = tmp_path / "killed.jsonl"
    code = ("import os, signal, sys\n"
            "from splitproof.verifier.inputs.records import Record, RecordWriter\n"
            "w = RecordWriter(sys.argv[1])\n"
            "for i in range(1000):\n"
            "    w.write(Record(1.5 + i, 'grpc', 5, 'production', 'ok', 2.25, 'RecommendationUser'))\n"
            "w.write_lines([Record(9.5, 'grpc', 2, 'canary', 'ok', 1.0).to_json()] * 3)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(out)], timeout=60, cwd="/")
    assert done.returncode == -9
    stats = ReadStats()
    got = list(read_records(out, stats))
    assert len(got) == 1003 and stats.malformed == stats.truncated == 0
    data = out.read_bytes()
    assert data.rstrip(b"\0").endswith(b"}\n")
    assert data.endswith(b"\0")  # the memory-mapped window's padding: the reader ends the data there


def test_a_pipe_is_written_with_write_calls() -> None:
    import subprocess
    import sys

    code = ("import sys\n"
            "from splitproof.verifier.inputs.records import Record, RecordWriter\n"
            "w = RecordWriter('/dev/stdout')\n"
            "assert not w._file.mapped\n"
            "w.write(Record(1.5, 'grpc', 5, 'production', 'ok', 2.25))\n"
            "w.close()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (Record(1.5, "grpc", 5, "production", "ok", 2.25).to_json() + "\n").encode()
