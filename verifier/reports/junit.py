"""``--junit``: the verdict as JUnit XML -- one testcase per version (share within its margin) plus the verdict;
with ``--health`` one testcase per health metric (``verify-split.health``) and the verdict's is the gate's.

A version shown within its margin passes, one shown different (or answering at 0% expected) fails, an undecided
one is skipped; the overall testcase fails on FAIL and on INCONCLUSIVE (a gate that could not decide must not look
green).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from splitproof.verifier import fmt
from splitproof.verifier.reports.text import STATUS_TEXT, gof_text
from splitproof.verifier.verdict import Outcome, Status, Verdict

if TYPE_CHECKING:
    from splitproof.verifier.reports.healthout import HealthReport


def write_junit(verdict: Verdict, path: str | Path, health: HealthReport | None = None) -> Path:
    suite = ET.Element("testsuite", name="verify-split")
    failures = skipped = 0
    cases = []
    if health is not None:
        from splitproof.verifier.reports.healthout import junit_cases  # the health reports: with --health only

        cases = junit_cases(health)
    props = ET.SubElement(suite, "properties")
    for key, value in (dataclasses.asdict(verdict.parameters) | dict(verdict.method_details)).items():
        if isinstance(value, str | int | float):
            ET.SubElement(props, "property", name=str(key), value=str(value))
    ET.SubElement(props, "property", name="method", value=verdict.method)
    for row in verdict.rows:
        margin = f"± {fmt.pp(row.margin)}" if row.expected > 0 else "(no response allowed)"
        case = ET.SubElement(suite, "testcase", classname="verify-split.versions",
                             name=f"{row.version} share {fmt.expected(row.expected)} {margin}")
        observed = (f"{row.version}: {row.count} responses, {fmt.pct(row.share)} ({verdict.interval_name} "
                    f"{fmt.interval(row.lo, row.hi)}), expected {fmt.pct(row.expected)}; p = "
                    f"{fmt.pvalue(row.p_value)}, equivalence p = {fmt.pvalue(row.p_equivalence)}")
        if row.status in (Status.DIFFERS, Status.UNEXPECTED):
            failures += 1
            ET.SubElement(case, "failure", message=f"{row.version} {STATUS_TEXT[row.status]}", type=row.status).text \
                = observed
        elif row.status == Status.UNDECIDED:
            skipped += 1
            ET.SubElement(case, "skipped", message=f"{row.version}: not yet shown within the margin")
        ET.SubElement(case, "system-out").text = observed
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname="verify-split.health", name=c.name)
        if c.failure is not None:
            failures += 1
            ET.SubElement(case, "failure", message=c.failure, type="FAIL").text = c.output
        elif c.skipped is not None:
            skipped += 1
            ET.SubElement(case, "skipped", message=c.skipped)
        ET.SubElement(case, "system-out").text = c.output
    overall = ET.SubElement(suite, "testcase", classname="verify-split", name="verdict")
    outcome, reason = verdict.outcome, verdict.reason
    if health is not None:
        gate = health.gate(verdict)
        outcome, reason = gate.outcome, gate.reason
    summary = f"{outcome}: {reason}"
    if outcome != Outcome.PASS:
        failures += 1
        ET.SubElement(overall, "failure", message=summary, type=outcome).text = summary
    u = verdict.unattributed_row
    ET.SubElement(overall, "system-out").text = (
        f"{summary}\n{gof_text(verdict)}\nunattributed: {u.count} of {u.total} ({fmt.pct(u.share)}), limit "
        f"{fmt.pct(u.limit)}")
    suite.set("tests", str(len(verdict.rows) + len(cases) + 1))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="verify-split", tests=suite.get("tests", "0"), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    out = Path(path)
    out.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8")
    return out
