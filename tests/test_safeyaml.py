"""verifier.safeyaml (every YAML reader's bounds) and verifier.inputfile (user-named files that never hang)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from splitproof.setup.manifests import CanaryParams, mesh_documents, mesh_yaml
from splitproof.verifier import safeyaml
from splitproof.verifier.inputfile import InputFileError, open_input, read_bounded
from splitproof.verifier.safeyaml import YamlInputError, check_events, load_documents


def laughs(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_the_c_loader_is_used_where_pyyaml_has_it() -> None:
    assert safeyaml.Loader is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)
    assert issubclass(safeyaml.Loader, yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def test_the_project_templates_load_as_before() -> None:
    assert load_documents(mesh_yaml(CanaryParams()), "mesh") == list(yaml.safe_load_all(mesh_yaml(CanaryParams())))
    assert [d["kind"] for d in mesh_documents(CanaryParams())][:2] == ["Gateway", "VirtualService"]


def test_aliases_count_as_what_they_stand_for() -> None:
    # the map, key a, its 3-node list, key b, its list holding two 3-node aliases: 1 + 1 + 3 + 1 + 1 + 3 + 3
    assert check_events("a: &a [1, 2]\nb: [*a, *a]\n", "t") == 13
    ordinary = "labels: &labels {app: recommendationservice, version: canary}\nselector: *labels\n"
    assert load_documents(ordinary, "t") == [{"labels": {"app": "recommendationservice", "version": "canary"},
                                              "selector": {"app": "recommendationservice", "version": "canary"}}]


def test_a_billion_laughs_is_refused_before_anything_is_built() -> None:
    assert check_events(laughs(5), "t") < safeyaml.MAX_NODES  # 9^5: fine
    with pytest.raises(YamlInputError, match="expands to more than 2,000,000 nodes"):
        load_documents(laughs(9), "bomb.yaml")  # 9^9 = 387M nodes from ~700 bytes


@pytest.mark.parametrize(("text", "message"), [
    ("a: &a [1, *a]\n", "alias \\*a refers to a node that contains it"),
    ("- " * 150 + "x\n", "nested deeper than 100 levels"),
    ("[" * 101 + "]" * 101, "nested deeper than 100 levels"),
    ("kind: [unclosed\n", "not valid YAML at line 2"),
    ("a: *nope\n", "undefined alias"),
    ("\x00\x01binary", "not valid YAML"),
])
def test_bad_yaml_is_one_line(text: str, message: str) -> None:
    with pytest.raises(YamlInputError, match=message) as caught:
        load_documents(text, "in.yaml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("in.yaml: ")


def test_size_is_bounded_before_parsing() -> None:
    with pytest.raises(YamlInputError, match="more than the 1,024 bytes limit"):
        load_documents("a: 1\n" * 300, "t", max_bytes=1024)


def test_the_pure_python_loader_gets_the_same_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safeyaml, "Loader", yaml.SafeLoader)
    with pytest.raises(YamlInputError, match="expands to more than"):
        load_documents(laughs(9), "t")
    with pytest.raises(YamlInputError, match="nested deeper"):
        load_documents("- " * 150 + "x\n", "t")
    assert load_documents("a: 1\n---\nb: 2\n", "t") == [{"a": 1}, {"b": 2}]


# --------------------------------------------------------------------------------------------- inputfile


def test_missing_directory_and_fifo_without_writer(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="--x: no such file"):
        open_input(str(tmp_path / "missing"), "--x")
    with pytest.raises(InputFileError, match="is a directory"):
        open_input(str(tmp_path), "--x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="FIFO with no writer"):
        open_input(str(fifo), "--x")


def test_a_fifo_writer_that_starts_after_the_reader_is_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def producer() -> None:
        time.sleep(0.2)  # the writer appears a little after the reader opened (a shell starting it)
        with open(fifo, "w") as fh:
            fh.write("hello\n" * 20_000)  # more than the pipe buffer and the first read

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        with open_input(str(fifo), "--x") as fh:
            assert fh.read() == b"hello\n" * 20_000
    finally:
        thread.join(timeout=10)


def test_reads_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="larger than 1 MiB"):
        read_bounded("/dev/zero", "--x", 1 << 20)  # endless: refused after limit + 1 bytes
    small = tmp_path / "f"
    small.write_bytes(b"x" * 100)
    assert read_bounded(str(small), "--x", 100) == b"x" * 100
    with pytest.raises(InputFileError, match="larger than 99 bytes"):
        read_bounded(str(small), "--x", 99)
