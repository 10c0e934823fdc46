"""The Python tier's imports run one way: from a higher layer to a lower one, never back.

Every module under ``python/soundspring`` is parsed with ``ast``; every import counts,
module-level and function-local, absolute and relative. A module belongs to the component
named by its first path segment below the package (``soundspring.evaluation.sweep`` is in
``evaluation``, ``soundspring.transceiver.stream`` is ``transceiver``). ``LAYERS`` is the one place the
allowed order is written, top to bottom. The rules:

* a component imports only itself and components of LOWER layers: neither an upward
  import nor one between two components of the same layer (the layer says they are
  independent of each other);
* no two modules import each other, directly or through others (no import cycle), even
  inside one component;
* every module is in a component that ``LAYERS`` names, so a new package has to be placed.

The package root (``soundspring/__init__.py``) is outside the order: it imports nothing of
the package when imported (its public names are resolved lazily, on first use), and any
module may read ``soundspring.__version__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "soundspring"
ROOT = Path(__file__).resolve().parents[1] / "python" / PACKAGE

LAYERS: tuple[tuple[str, ...], ...] = (
    # the command line: argument parsing, console and file I/O rules
    ("__main__",),
    ("cli",),
    ("commands",),
    # tools over the product; training evaluates its checkpoints, evaluation never trains
    ("training", "bench", "linktest"),
    ("evaluation",),
    ("data", "baselines"),
    # live transport: RTP over UDP sockets, around the transceiver
    ("net",),
    # the transceiver: both ends, the .spring header schema, whole signals
    ("transceiver",),
    # the stages: concealment over the entropy coder's PMFs; the nn models, their weights
    # files and loaders (load_models pairs a codec with an entropy CodingModel)
    ("plc", "models"),
    # the chunk entropy coder; packets, container, loss models, jitter buffer
    ("entropy", "transport"),
    # leaves: the range-coding facade, PCM I/O and the one PCM check, signal processing
    ("coding", "audio", "dsp"),
    # the constants and shared settings (config validates with _validate)
    ("config", "_native"),
    ("_validate",),
    ("errors", "_core"),
)
"""The allowed order of the components, top (imports the most) to bottom (imports nothing
of the package)."""

LAYER_OF = {name: depth for depth, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_module(name: str) -> bool:
    return name in MODULES or name == f"{PACKAGE}._core"


def imports_of(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the package in the ``source`` of
    ``module``, function-local ones included. ``from X import Y`` counts as an import of
    ``X.Y`` when that is a module, else of ``X``."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name == PACKAGE or a.name.startswith(PACKAGE + ".")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else target))
    return sorted(set(found))


def component(module: str) -> str:
    """``soundspring.evaluation.sweep`` -> ``evaluation``; the root -> ``""``."""
    return module.split(".")[1] if "." in module else ""


GRAPH = {m: imports_of(m, p.read_text(encoding="utf-8"), p.name == "__init__.py")
         for m, p in MODULES.items()}


def test_every_component_is_placed():
    unplaced = sorted({component(m) for m in MODULES} - set(LAYER_OF) - {""})
    assert not unplaced, f"components missing from LAYERS: {unplaced}"


def test_the_root_imports_nothing_of_the_package():
    assert GRAPH[PACKAGE] == [], "soundspring/__init__.py must stay lazy (import_module only)"


def test_imports_run_down_the_layers():
    wrong = []
    for module, imports in GRAPH.items():
        src = component(module)
        for line, target in imports:
            dst = component(target)
            if dst in ("", src) or module == PACKAGE:
                continue
            if LAYER_OF[dst] <= LAYER_OF[src]:
                how = "sideways" if LAYER_OF[dst] == LAYER_OF[src] else "upward"
                wrong.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line} imports "
                             f"{target} ({how}: {src} -> {dst})")
    assert not wrong, "imports against LAYERS:\n" + "\n".join(sorted(wrong))


def _imports_argparse(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def test_argparse_only_in_the_command_line():
    """Libraries take config dataclasses or plain arguments; parsers live in ``commands/``."""
    outside = [m for m, p in MODULES.items()
               if component(m) not in ("cli", "commands") and _imports_argparse(p)]
    assert outside == []


def test_every_command_is_a_commands_module():
    from soundspring.cli import COMMANDS

    assert all(target.startswith(f"{PACKAGE}.commands.") and target in MODULES
               for target, _ in COMMANDS.values()), COMMANDS


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1 or v in graph.get(v, ()):
                found.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = {m: {t for _, t in imports if t in MODULES and t != PACKAGE}
             for m, imports in GRAPH.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
    ({"a": {"a"}}, [["a"]]),
])
def test_cycle_finder(graph, expected):
    assert _cycles(graph) == expected


def test_local_and_relative_imports_are_seen():
    source = (
        "import soundspring.coding\n"
        "from .. import config\n"
        "from ..models.codec import Codec\n"
        "def f():\n"
        "    from . import metrics\n"
        "    from ..transceiver import transmit\n"
    )
    assert imports_of(f"{PACKAGE}.evaluation.sweep", source) == [
        (1, f"{PACKAGE}.coding"),
        (2, f"{PACKAGE}.config"),
        (3, f"{PACKAGE}.models.codec"),
        (5, f"{PACKAGE}.evaluation.metrics"),
        (6, f"{PACKAGE}.transceiver"),
    ]
