"""``canary-setup demo`` -- what ``make demo`` runs: the whole local canary story in about a minute.

1. Start the lab's topology on a real Envoy at 80/20 (setup.mesh.LocalMesh: ingress, frontend, catalog,
   production recommendationservice returning 5 items, canary returning 2).
2. Load it with the real Locust file (loadtest/boutique.py, headless): shoppers browse product pages through
   the ingress, a gRPC user calls the mesh entry; every response is attributed and recorded.
3. ``verify-split --expected 20 --results ...`` on that file: the gate must say PASS; then the passive gate,
   ``verify-split --expected 20 --prometheus <the mesh's Prometheus> --since/--until <the load's window>``: the
   same verdict from the mesh's telemetry (Istio's istio_requests_total), its counts shown next to the records'.
4. Misroute: weights 50/50 while 20 is still expected (changed live, Envoy not restarted).
5. ``verify-split --expected 20 --target <mesh entry>``: the sequential test samples live and must FAIL fast.
6. Stop everything (also on Ctrl-C or any error).
7. Two progressive rollouts (setup/rollout/demo.py): a healthy canary promoted 5 -> 20 -> 50 -> 100, and a canary
   failing 5% of its calls rolled back at its first step.

Exit 0 only when the verdicts came out PASS then FAIL (and the rollouts promoted, then rolled back). The demo
runs the gate at alpha 0.001 (the default is 0.01) so a correct split fails ``make demo`` about once in a thousand
runs rather than once in a hundred; the 50/50 misroute still fails within a few hundred samples.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from splitproof import loadtest
from splitproof.setup import proc
from splitproof.setup.errors import SetupError, WaitTimeoutError
from splitproof.setup.manifests import CanaryParams
from splitproof.verifier.exitcodes import ExitCode
from splitproof.verifier.istio import canary_weights

EXPECTED_CANARY = 20
MISROUTE_CANARY = 50
LOCUST_GRACE_S = 30.0     # beyond --duration: Locust start-up, ramp and stop
VERIFY_TIMEOUT_S = 120.0


def locustfile() -> Path:
    """loadtest/boutique.py of the installed package (works from a wheel, not only from the repository)."""
    return Path(loadtest.__file__).resolve().parent / "boutique.py"


def locust_argv(host: str, grpc_target: str, results: Path, *, users: int, duration: int, alpha: float,
                csv_prefix: Path) -> list[str]:
    return proc.python_argv(
        "-m", "locust", "-f", str(locustfile()),
        "--headless", "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--stop-timeout", "5",
        "--host", host, "--grpc-target", grpc_target,
        "--split-results", str(results), "--expected", str(EXPECTED_CANARY), "--alpha", str(alpha),
        "--csv", str(csv_prefix), "--only-summary", "--loglevel", "WARNING",
    )


def verify_argv(*, alpha: float, results: Path | None = None, target: str | None = None,
                html: Path, json_path: Path, save: Path | None = None) -> list[str]:
    argv = proc.python_argv("-m", "splitproof.verifier.cli", "--expected", str(EXPECTED_CANARY), "--alpha", str(alpha),
                            "--html", str(html), "--json", str(json_path))
    if results is not None:
        argv += ["--results", str(results)]
    if target is not None:
        argv += ["--target", target, "--max-samples", "5000", "--duration", "60", "--no-progress"]
    if save is not None:
        argv += ["--save-results", str(save)]
    return argv


class LineCounter:
    """Lines of a growing file, reading only what was appended since the last look (for a live progress bar)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                for chunk in iter(lambda: fh.read(1 << 16), b""):
                    self.lines += chunk.count(b"\n")
                    self.offset += len(chunk)
        except OSError:
            pass
        return self.lines


def count_lines(path: Path) -> int:
    """Lines of ``path`` now (0 when it does not exist)."""
    return LineCounter(path)()


class Demo:
    def __init__(self, out: Path, duration: int, users: int, alpha: float, console: Console,
                 rollouts: bool = True) -> None:
        self.out = out
        self.rollouts = rollouts
        self.duration = duration
        self.users = users
        self.alpha = alpha
        self.console = console
        self.children: list[subprocess.Popen[bytes]] = []

    def say(self, message: str) -> None:
        self.console.print(f"[bold cyan]demo[/] {message}", highlight=False)

    def run_child(self, argv: list[str], timeout: float, log: Path | None = None) -> int:
        """Run a real child process to completion, registered so Ctrl-C or an error always stops it."""
        sys.stdout.flush()
        child = proc.spawn(argv, log=log, inherit_output=log is None, on_start=self.children.append)
        try:
            return child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            name = argv[argv.index("-m") + 1] if "-m" in argv else Path(argv[0]).name
            raise SetupError(f"{name} did not finish within {timeout:g}s") from None
        finally:
            proc.stop(child)

    def stop_children(self) -> None:
        proc.stop_all(self.children)

    # ------------------------------------------------------------------------------------------------ phases

    def load(self, mesh_ingress: str, grpc_entry: str, results: Path) -> int:
        log = self.out / "locust.log"
        argv = locust_argv(mesh_ingress, grpc_entry, results, users=self.users, duration=self.duration,
                           alpha=self.alpha, csv_prefix=self.out / "locust")
        self.say(f"load: Locust headless, {self.users} users for {self.duration}s "
                 f"(shoppers via the ingress, gRPC user via the mesh entry) -> {results}")
        child = proc.spawn(argv, log=log, on_start=self.children.append)
        limit = self.duration + LOCUST_GRACE_S
        columns = (TextColumn("  {task.description}"), BarColumn(), TextColumn("{task.fields[records]:>8,} records"),
                   TimeRemainingColumn())
        counted = LineCounter(results)
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task("Locust", total=self.duration, records=0)
            start = time.monotonic()

            def finished() -> bool:
                progress.update(task, completed=min(time.monotonic() - start, self.duration), records=counted())
                return child.poll() is not None

            try:
                proc.wait_until(finished, limit, "Locust", 0.25, max_interval=0.25)
            except WaitTimeoutError:
                proc.stop(child)
                raise SetupError(f"Locust did not finish within {limit:g}s (log: {log})") from None
        code = child.returncode
        self.say(f"Locust finished (exit {code}: its own live verdict), {count_lines(results):,} records")
        if code not in (0, 1, 3):
            tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
            raise SetupError(f"Locust failed with exit code {code}: {' | '.join(tail) or 'no output'} (log: {log})")
        return code

    def run(self) -> int:
        from splitproof.setup.mesh import LocalMesh  # imported here: `canary-setup --help` stays fast
        from splitproof.setup.mesh.prometheus import scraped_after

        self.out.mkdir(parents=True, exist_ok=True)
        results = self.out / "run-80-20.jsonl"
        results.unlink(missing_ok=True)
        started = time.monotonic()
        verdicts: list[tuple[str, int, int]] = []
        self.say(f"starting the local mesh at {100 - EXPECTED_CANARY}/{EXPECTED_CANARY} on a real Envoy ...")
        passive = self.prometheus_binary()
        with LocalMesh(CanaryParams(weights=canary_weights(EXPECTED_CANARY)), prometheus=passive) as mesh:
            served = mesh.router.served_weights().weights
            self.say(f"mesh ready: ingress {mesh.ingress_url}, gRPC entry {mesh.grpc_entry}; "
                     f"Envoy serves {served}" + (f"; Prometheus {mesh.prometheus_url}" if passive else ""))
            since = scraped_after(mesh.prometheus_url, time.time()) if passive else 0.0
            self.load(mesh.ingress_url, mesh.grpc_entry, results)
            # Envoy flushes access logs every 100 ms; the first scrape after that has every request of the load
            until = scraped_after(mesh.prometheus_url, time.time() + 0.5) if passive else 0.0

            self.say(f"gate 1: verify-split --expected {EXPECTED_CANARY} --results {results.name} "
                     f"(expect [green]PASS[/])")
            code = self.run_child(verify_argv(alpha=self.alpha, results=results, html=self.out / "report-80-20.html",
                                              json_path=self.out / "verdict-80-20.json"), VERIFY_TIMEOUT_S)
            verdicts.append(("80/20, results file", 0, code))
            if passive:
                verdicts.append(("80/20, passive from Prometheus", 0, self.passive_gate(mesh.prometheus_url, since,
                                                                                           until)))

            took = mesh.set_weights(MISROUTE_CANARY)
            served = mesh.router.served_weights().weights
            self.say(f"misroute: weights now {served} (applied in {took * 1000:.0f} ms, Envoy not restarted) while "
                     f"{EXPECTED_CANARY}% is still expected")
            self.say(f"gate 2: verify-split --expected {EXPECTED_CANARY} --target {mesh.grpc_entry} "
                     f"(sequential; expect [red]FAIL[/])")
            t0 = time.monotonic()
            code = self.run_child(verify_argv(alpha=self.alpha, target=mesh.grpc_entry,
                                              html=self.out / "report-misroute.html",
                                              json_path=self.out / "verdict-misroute.json",
                                              save=self.out / "misroute.jsonl"), VERIFY_TIMEOUT_S)
            verdicts.append((f"{100 - MISROUTE_CANARY}/{MISROUTE_CANARY}, live sequential", 1, code))
            sampled = count_lines(self.out / "misroute.jsonl")
            self.say(f"the sequential gate decided after {sampled:,} responses in {time.monotonic() - t0:.1f}s")
            self.say("stopping the mesh ...")
        if self.rollouts:  # the progressive rollout's two endings, each on its own mesh (setup/rollout/demo.py)
            from splitproof.setup.rollout.demo import run_rollouts

            verdicts += [(f"rollout, {label}", want, got)
                         for label, want, got, _ in run_rollouts(self.out, self.say, self.alpha)]
        return self.summary(verdicts, time.monotonic() - started)

    def prometheus_binary(self) -> bool:
        from splitproof.setup.mesh.prometheus import find_prometheus

        try:
            find_prometheus()
        except SetupError as exc:
            self.say(f"[yellow]no passive gate[/]: {exc}")
            return False
        return True

    def passive_gate(self, prometheus_url: str, since: float, until: float) -> int:
        self.say(f"gate 1b: verify-split --expected {EXPECTED_CANARY} --prometheus {prometheus_url} --since/--until "
                 f"the load's {until - since:.0f}s (passive: the mesh's istio_requests_total; expect [green]PASS[/])")
        json_path = self.out / "verdict-passive.json"
        argv = verify_argv(alpha=self.alpha, html=self.out / "report-passive.html", json_path=json_path)
        code = self.run_child([*argv, "--prometheus", prometheus_url, "--since", f"{since:.3f}", "--until",
                               f"{until:.3f}"], VERIFY_TIMEOUT_S)
        records = _rows(self.out / "verdict-80-20.json")
        telemetry = _rows(json_path)
        self.say("counts   " + "   ".join(f"{v}: records {records.get(v, 0):,} / Prometheus {telemetry.get(v, 0):,}"
                                         for v in dict.fromkeys([*records, *telemetry]))
                 + " (Prometheus counts every request the mesh routed to the service: the cart pages' too, which "
                   "the Locust records do not attribute)")
        return code

    def summary(self, verdicts: list[tuple[str, int, int]], elapsed: float) -> int:
        names = {0: "PASS", 1: "FAIL", 2: "USAGE ERROR", 3: "INCONCLUSIVE", 4: "UNREACHABLE"}
        ok = True
        for label, want, got in verdicts:
            good = want == got
            ok &= good
            mark = "[green]as expected[/]" if good else f"[red]expected {names[want]}[/]"
            self.say(f"{label}: [bold]{names.get(got, f'exit {got}')}[/] ({mark})")
        reports = [self.out / "report-80-20.html", self.out / "report-misroute.html", self.out / "report-passive.html"]
        if self.rollouts:
            reports += [self.out / f"rollout-{n}.html" for n in ("healthy", "bad-canary")]
        self.say("reports: " + ", ".join(str(p) for p in reports if p.exists()))
        self.say(f"done in {elapsed:.0f}s: " + ("[green]the gate passed the right split and failed the "
                                                 "misroute[/]" if ok else "[red]the verdicts were not as expected[/]"))
        return ExitCode.OK if ok else ExitCode.FAIL


def _rows(path: Path) -> dict[str, int]:
    """Per-version counts of a verdict JSON written by verify-split ({} when it is missing)."""
    try:
        return {row["version"]: int(row["count"]) for row in json.loads(path.read_text(encoding="utf-8"))["rows"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def run_demo(args: argparse.Namespace) -> int:
    if args.duration < 5 or args.duration > 600:
        raise SetupError("--duration must be between 5 and 600 seconds", ExitCode.USAGE)
    if args.users < 1 or args.users > 200:
        raise SetupError("--users must be between 1 and 200", ExitCode.USAGE)
    if not 0 < args.alpha < 0.5:
        raise SetupError("--alpha must be between 0 and 0.5", ExitCode.USAGE)
    demo = Demo(Path(args.out), args.duration, args.users, args.alpha, Console(highlight=False),
                rollouts=not args.no_rollouts)
    try:
        return demo.run()
    finally:
        demo.stop_children()


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo", help="the whole local canary run: mesh at 80/20, Locust, verify PASS; misroute, verify FAIL",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=45, help="seconds of Locust load (default: %(default)s)")
    p.add_argument("--users", type=int, default=20, help="Locust users (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.001, help="the gate's error rate (default: %(default)s)")
    p.add_argument("--out", default="out/demo", help="where results and reports go (default: %(default)s)")
    p.add_argument("--no-rollouts", action="store_true", help="skip the two progressive rollouts at the end")
    p.set_defaults(func=run_demo)
