"""Reading untrusted YAML safely: every YAML the project reads (Istio manifests, ``--from-virtualservice`` files,
``lint`` inputs, KUBECONFIG files, its own rendered templates) goes through :func:`load_documents`.

``yaml.safe_load`` alone is not enough for input a stranger may have written:

* **size** -- the pure-Python loader needs 40 s to over 120 s and 1.5 GB for 50 MB of YAML. Inputs are bounded
  (:data:`MAX_BYTES`, 8 MiB: some 250 times the Online Boutique manifests) and parsed with libyaml's
  ``CSafeLoader`` where PyYAML was built with it (about 3 s for 8 MiB), the pure-Python ``SafeLoader`` otherwise;
* **aliases** -- nine nested anchors of nine aliases each ("billion laughs") are a few hundred bytes that expand to
  387 million nodes: the document loads as shared references, but anything that walks it -- an error message
  formatting a ``weight: *bomb``, ``json.dumps`` -- hangs and eats memory. Before anything is constructed, the
  parser's event stream is scanned and the document refused when its nodes, *counting every alias as the node it
  stands for*, exceed :data:`MAX_NODES`, or when an alias refers to a node that contains it;
* **depth** -- nesting is bounded by :data:`MAX_DEPTH` (the pure-Python loader recurses per level).

Errors are :class:`YamlInputError` (a ValueError) with a one-line message; callers choose their exit code.
"""

from __future__ import annotations

from typing import Any

import yaml

from splitproof.verifier.inputfile import describe_size, read_bounded

MAX_BYTES = 8 << 20
MAX_NODES = 2_000_000
MAX_DEPTH = 100

Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlInputError(ValueError):
    """YAML that is not valid, too big, too deep or expands too far through aliases; one line."""


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _problem(exc: yaml.YAMLError) -> str:
    text = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    return " ".join(str(text).split())[:200]


def check_events(data: str | bytes, origin: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> int:
    """Scan the parser's events (nothing is constructed) and return the number of nodes the input expands to,
    every alias counted as the node it refers to. YamlInputError when that exceeds ``max_nodes``, when nesting
    is deeper than ``max_depth`` or when an alias refers to a node that contains it."""
    loader = Loader(data)
    sizes: dict[str, int] = {}     # anchor -> expanded size of its complete node (anchors are per document)
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []    # [anchor, expanded size so far] of each open collection
    expanded = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                sizes.clear()
                continue
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= max_depth:
                    raise YamlInputError(f"{origin}: nested deeper than {max_depth} levels{_where_event(event)}")
                if event.anchor:
                    open_anchors.add(event.anchor)
                stack.append([event.anchor, 1])
                size = 1
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, done = stack.pop()
                if anchor:
                    open_anchors.discard(anchor)
                    sizes[anchor] = done
                if stack:
                    stack[-1][1] += done
                continue
            elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                if isinstance(event, yaml.AliasEvent) and event.anchor in open_anchors:
                    raise YamlInputError(f"{origin}: alias *{event.anchor} refers to a node that contains it"
                                         f"{_where_event(event)}")
                # an undefined alias counts 1 here; constructing reports it
                size = sizes.get(event.anchor, 1) if isinstance(event, yaml.AliasEvent) else 1
                if isinstance(event, yaml.ScalarEvent) and event.anchor:
                    sizes[event.anchor] = 1
                if stack:
                    stack[-1][1] += size
            else:
                continue
            expanded += size
            if expanded > max_nodes:
                raise YamlInputError(f"{origin}: expands to more than {max_nodes:,} nodes through its aliases "
                                     f"(an alias bomb?)")
    except yaml.YAMLError as exc:
        raise YamlInputError(f"{origin}: not valid YAML{_where(exc)}: {_problem(exc)}") from None
    finally:
        loader.dispose()
    return expanded


def _where_event(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" at line {mark.line + 1}" if mark is not None else ""


def load_documents(data: str | bytes, origin: str, *, max_bytes: int = MAX_BYTES) -> list[Any]:
    """Every document of ``data`` (empty ones dropped), within the bounds of the module docstring."""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > max_bytes:
        raise YamlInputError(f"{origin}: {describe_size(size)} of YAML is more than the {describe_size(max_bytes)} "
                             f"limit")
    check_events(data, origin)
    loader = Loader(data)
    docs: list[Any] = []
    try:
        while loader.check_node():
            doc = loader.construct_document(loader.get_node())
            if doc is not None:
                docs.append(doc)
    except yaml.YAMLError as exc:
        raise YamlInputError(f"{origin}: not valid YAML{_where(exc)}: {_problem(exc)}") from None
    except RecursionError:  # the pure-Python loader, before MAX_DEPTH could be checked
        raise YamlInputError(f"{origin}: nested too deeply") from None
    finally:
        loader.dispose()
    return docs


def read_documents(path: str, what: str, *, max_bytes: int = MAX_BYTES) -> list[Any]:
    """The documents of the YAML file ``path`` (``-`` = stdin). InputFileError or YamlInputError, one line."""
    data = read_bounded(path, what, max_bytes)
    return load_documents(data, f"{what} {'(stdin)' if path == '-' else path}", max_bytes=max_bytes)
