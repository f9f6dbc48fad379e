"""docs/ci/*: each CI recipe is valid YAML and the verify-split command it runs exists with those flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from splitproof.verifier.cli import build_parser
from splitproof.verifier.command.settings import settings

CI_DIR = Path(__file__).resolve().parent.parent / "docs" / "ci"
RECIPES = sorted(CI_DIR.glob("*.y*ml"))

# Template variables each CI system fills in, given plausible values so the flags can be type-checked.
SUBSTITUTIONS = {
    r"\$\{\{\s*inputs\.canary_weight\s*\}\}": "20",
    r"\{\{args\.canary-weight\}\}": "20",
    r"\{\{args\.image\}\}": "splitproof:test",
    r'"\$CANARY_WEIGHT"': "20",
    r'"\$INGRESS_URL"': "http://ingress.example",
}


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _argv_lists(node: Any) -> list[list[str]]:
    """Container ``command`` lists that run verify-split directly (exec form, no shell)."""
    if isinstance(node, dict):
        return [a for v in node.values() for a in _argv_lists(v)]
    if isinstance(node, list):
        if node and node[0] == "verify-split" and all(isinstance(x, str) for x in node):
            return [[_substituted(x) for x in node[1:]]]
        return [a for v in node for a in _argv_lists(v)]
    return []


def _substituted(text: str) -> str:
    for pattern, value in SUBSTITUTIONS.items():
        text = re.sub(pattern, value, text)
    return text


def verify_split_commands(doc: Any) -> list[list[str]]:
    """Every verify-split invocation inside the document's strings (and exec-form command lists), as argv lists
    (after the command name)."""
    found = _argv_lists(doc)
    for text in _strings(doc):
        for pattern, value in SUBSTITUTIONS.items():
            text = re.sub(pattern, value, text)
        for segment in re.split(r";|&&|\n(?=\S)", text):
            words = shlex.split(segment)
            if len(words) > 1 and words[0] == "verify-split":  # a command, not a container named verify-split
                found.append(words[1:])
    return found


def test_there_is_a_recipe_for_each_ci_system() -> None:
    names = {p.name for p in RECIPES}
    assert {"github-actions.yml", "gitlab-ci.yml", "argo-analysistemplate.yaml", "flagger-canary.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses_and_its_command_is_accepted(recipe: Path) -> None:
    docs = [d for d in yaml.safe_load_all(recipe.read_text()) if d]
    assert docs, f"{recipe.name} is empty"
    commands = [c for d in docs for c in verify_split_commands(d)]
    assert commands, f"{recipe.name} never runs verify-split"
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # exits (SystemExit 2) on an unknown flag or a bad value
        assert args.expected or args.weights or args.from_virtualservice
        assert args.target or args.url or args.prometheus, "a CI gate samples live or reads the mesh's telemetry"
        settings(args)  # the combination is accepted too (InputError otherwise)


def test_recipe_specifics() -> None:
    gha = yaml.safe_load((CI_DIR / "github-actions.yml").read_text())
    steps = gha["jobs"]["verify-split"]["steps"]
    assert any("--junit" in str(step.get("run", "")) for step in steps)
    gitlab = yaml.safe_load((CI_DIR / "gitlab-ci.yml").read_text())
    assert gitlab["verify-canary-split"]["artifacts"]["reports"]["junit"] == "splitproof-junit.xml"
    argo = yaml.safe_load((CI_DIR / "argo-analysistemplate.yaml").read_text())
    assert argo["kind"] == "AnalysisTemplate"
    job = argo["spec"]["metrics"][0]["provider"]["job"]["spec"]
    # in the mesh (the sidecar applies the split) and the sidecar told to quit so the Job can complete
    assert job["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    assert "quitquitquit" in " ".join(job["template"]["spec"]["containers"][0]["command"])
    flagger = yaml.safe_load((CI_DIR / "flagger-canary.yaml").read_text())
    hook = flagger["spec"]["analysis"]["webhooks"][0]
    assert hook["metadata"]["type"] == "cmd" and hook["metadata"]["cmd"].startswith("verify-split ")


def test_passive_recipes_send_no_load_and_need_no_sidecar() -> None:
    argo = yaml.safe_load((CI_DIR / "argo-analysistemplate-prometheus.yaml").read_text())
    job = argo["spec"]["metrics"][0]["provider"]["job"]["spec"]
    assert job["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    (argv,) = verify_split_commands(job["template"]["spec"]["containers"][0])
    args = build_parser().parse_args(argv)
    assert args.prometheus == "http://prometheus.istio-system:9090" and args.since == "10m" and not args.target
    flagger = yaml.safe_load((CI_DIR / "flagger-canary-prometheus.yaml").read_text())
    (argv,) = verify_split_commands(flagger["spec"]["analysis"]["webhooks"][0]["metadata"]["cmd"])
    args = build_parser().parse_args(argv)
    assert args.prometheus and args.watch and not (args.target or args.url)


def test_command_extraction_can_fail() -> None:
    """The check above is not vacuous: an unknown flag is refused by the real parser."""
    argv = verify_split_commands({"run": "verify-split --expected 20 --url http://x --no-such-flag"})[0]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
