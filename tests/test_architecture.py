"""The structure drawn from the imports: no cycles, and every arrow points down the data flow.

Every ``import`` and ``from ... import`` in ``gaitdata``, ``pseudolabel`` and ``splits`` counts, wherever
it stands: at module level, inside a function (the lazy imports), under ``if TYPE_CHECKING:``. A
module importing one of its own packages (``gaitdata.x.y`` -> ``gaitdata.x``) is not an arrow. Modules
named only by a string (the teacher registry, the CLI's verb table) are plug-ins found at run time and
are not arrows either: the plug-in imports the registry, never the other way round.

A *unit* is a module of a package (``gaitdata.coco``) or a whole subpackage (``gaitdata.containers``,
``pseudolabel.teachers``). :data:`LAYERS` places every unit on a layer, bottom first, following the
data flow (recordings -> frames -> labels -> splits -> exports -> models); a unit may import its own
layer and the layers below it. :data:`ALLOWED` lists the upward arrows that are accepted, each with
its reason.

Two habits of the code are checked here too: no function of the library is longer than
:data:`MAX_FUNCTION_LINES`, and box geometry (intersection, IoU, cutting a box to the image) is
computed in :mod:`gaitdata.geometry` only.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gaitdata", "pseudolabel", "splits")

# bottom first: (layer, units). Every unit stands on exactly one layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation: errors, atomic files, records, keypoint schema, geometry, output (progress, tables, native logs)",
        (
            "gaitdata", "gaitdata._version", "gaitdata.errors", "gaitdata.io", "gaitdata.procs", "gaitdata.records",
            "gaitdata.schema", "gaitdata.geometry", "gaitdata.align", "gaitdata.metrics", "gaitdata.progress",
            "gaitdata.tables", "gaitdata.nativelog", "gaitdata.distributed",
        ),
    ),
    (
        "the dataset root: its tables, label sets, lock, lineage and the names of its images",
        (
            "gaitdata.dataset", "gaitdata.labels", "gaitdata.lock", "gaitdata.lineage", "gaitdata.staleness",
            "gaitdata.migrate", "gaitdata.imagenames",
        ),
    ),
    (
        "recordings -> frames: containers, discovery, extraction, synthetic recordings",
        ("gaitdata.containers", "gaitdata.discover", "gaitdata.extract", "gaitdata.synth"),
    ),
    (
        "frames -> labels: teachers, boxes, the labelling run, post-processing, agreement",
        (
            "pseudolabel", "pseudolabel.agreement", "pseudolabel.alphapose_results", "pseudolabel.boxes",
            "pseudolabel.checkpoints", "pseudolabel.models", "pseudolabel.postprocess", "pseudolabel.proposals",
            "pseudolabel.registry", "pseudolabel.remote", "pseudolabel.runner", "pseudolabel.teachers",
            "pseudolabel.tracking",
        ),
    ),
    (
        "labels -> splits",
        ("splits", "splits.audit", "splits.core", "splits.record"),
    ),
    (
        "exports and imports: COCO, gait pose arrays, label sets made elsewhere",
        ("gaitdata.coco", "gaitdata.gaitnames", "gaitdata.gaitposes", "pseudolabel.importers"),
    ),
    (
        "what consumes a dataset: the student model, the FiftyOne browser",
        ("gaitdata.student", "gaitdata.browse"),
    ),
    (
        "entry points and fixtures: the demo, the CLI, test and benchmark data",
        ("gaitdata.demo", "gaitdata.cli", "gaitdata.__main__", "gaitdata.testing"),
    ),
)

# (importing unit, imported unit) -> why this upward arrow is accepted
ALLOWED: dict[tuple[str, str], str] = {}


# ---- the graph ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrow:
    source: str  # importing module
    target: str  # imported module
    where: str  # path:line of the import


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def find_modules(root: Path = REPO) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` denotes: itself, else its nearest enclosing module of the project."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> Iterable[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (r := _resolve(alias.name, modules)) is not None:
                yield r
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        for alias in node.names:
            full = f"{source}.{alias.name}"  # `from pkg import submodule` imports the submodule
            if (r := _resolve(full if full in modules else source, modules)) is not None:
                yield r


def import_arrows(modules: dict[str, Path], root: Path = REPO) -> list[Arrow]:
    arrows = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, mod, path.name == "__init__.py", modules):
                if target != mod and not mod.startswith(target + "."):
                    arrows.append(Arrow(mod, target, f"{path.relative_to(root)}:{node.lineno}"))
    return arrows


def unit_of(module: str, modules: dict[str, Path]) -> str:
    """``pkg.sub`` for a module inside subpackage ``pkg.sub``, else the module itself."""
    parts = module.split(".")
    if len(parts) >= 2 and modules.get(".".join(parts[:2]), Path()).name == "__init__.py":
        return ".".join(parts[:2])
    return module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def _describe(comp: list[str], arrows: list[Arrow], key) -> str:
    inside = set(comp)
    where = sorted({f"{a.source} -> {a.target} ({a.where})" for a in arrows if key(a.source) in inside
                    and key(a.target) in inside and key(a.source) != key(a.target)})  # fmt: skip
    return f"{' <-> '.join(comp)}: " + "; ".join(where)


# ---- the checks ---------------------------------------------------------------------------------
MODULES = find_modules()
ARROWS = import_arrows(MODULES)
LAYER_OF = {u: i for i, (_, units) in enumerate(LAYERS) for u in units}


def test_the_graph_sees_every_kind_of_import(tmp_path) -> None:
    pkg = tmp_path / "gaitdata"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gaitdata.b import X\n"
        "def f():\n    import gaitdata.sub.c\n    from . import d\n"
    )
    for name in ("b.py", "d.py", "sub/__init__.py", "sub/c.py"):
        (pkg / name).write_text("from .. import a\n" if name == "sub/c.py" else "")
    modules = find_modules(tmp_path)
    arrows = {(a.source, a.target) for a in import_arrows(modules, tmp_path)}
    assert arrows == {("gaitdata.a", "gaitdata.b"), ("gaitdata.a", "gaitdata.sub.c"), ("gaitdata.a", "gaitdata.d"),
                      ("gaitdata.sub.c", "gaitdata.a")}  # fmt: skip
    assert unit_of("gaitdata.sub.c", modules) == "gaitdata.sub" and unit_of("gaitdata.a", modules) == "gaitdata.a"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for a in ARROWS:
        graph[a.source].add(a.target)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(c, ARROWS, lambda m: m) for c in found)


def test_no_import_cycles_between_units() -> None:
    graph: dict[str, set[str]] = {}
    for m in MODULES:
        graph.setdefault(unit_of(m, MODULES), set())
    for a in ARROWS:
        s, t = unit_of(a.source, MODULES), unit_of(a.target, MODULES)
        if s != t:
            graph[s].add(t)
    found = cycles(graph)
    key = lambda m: unit_of(m, MODULES)  # noqa: E731
    assert not found, "cycles between units:\n" + "\n".join(_describe(c, ARROWS, key) for c in found)


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(m, MODULES) for m in MODULES}
    listed = [u for _, us in LAYERS for u in us]
    twice = sorted({u for u in listed if listed.count(u) > 1})
    assert not twice, f"units on more than one layer of LAYERS: {twice}"
    unplaced, unknown = sorted(units - set(listed)), sorted(set(listed) - units)
    assert not unplaced, f"place these units on a layer of LAYERS: {unplaced}"
    assert not unknown, f"LAYERS names units that do not exist: {unknown}"
    stale = sorted(k for k in ALLOWED if not (set(k) <= units))
    assert not stale, f"ALLOWED names units that do not exist: {stale}"


def test_no_upward_arrows() -> None:
    upward = []
    used = set()
    for a in ARROWS:
        s, t = unit_of(a.source, MODULES), unit_of(a.target, MODULES)
        if s == t or s not in LAYER_OF or t not in LAYER_OF or LAYER_OF[t] <= LAYER_OF[s]:
            continue
        if (s, t) in ALLOWED:
            used.add((s, t))
            continue
        upward.append(f"{a.source} -> {a.target} ({a.where}): layer '{LAYERS[LAYER_OF[s]][0]}' imports "
                      f"'{LAYERS[LAYER_OF[t]][0]}'")  # fmt: skip
    assert not upward, "upward arrows:\n" + "\n".join(sorted(upward))
    assert used == set(ALLOWED), f"ALLOWED lists arrows that no longer exist: {sorted(set(ALLOWED) - used)}"


def test_the_library_never_imports_its_test_fixtures() -> None:
    users = sorted(f"{a.source} ({a.where})" for a in ARROWS
                   if unit_of(a.target, MODULES) == "gaitdata.testing" != unit_of(a.source, MODULES))  # fmt: skip
    assert not users, "gaitdata.testing is for tests and benchmarks, yet imported by: " + ", ".join(users)


def test_geometry_is_a_leaf_of_the_foundation() -> None:
    assert LAYER_OF["gaitdata.geometry"] == 0
    tree = ast.parse(MODULES["gaitdata.geometry"].read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "typing", "numpy"}, f"gaitdata.geometry imports {sorted(imported)}: numpy only"


# ---- function length ------------------------------------------------------------------------------
MAX_FUNCTION_LINES = 150


def long_functions(modules: dict[str, Path], limit: int = MAX_FUNCTION_LINES, root: Path = REPO) -> list[str]:
    """``module:function (N lines)`` for every function or method longer than ``limit`` lines
    (from ``def`` to its last line; a nested function counts inside its parent too)."""
    found = []
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > limit:
                    found.append(f"{mod}:{node.name} ({n} lines, {path.relative_to(root).as_posix()}:{node.lineno})")
    return sorted(found)


def test_the_length_check_sees_long_functions(tmp_path) -> None:
    pkg = tmp_path / "gaitdata"
    pkg.mkdir()
    lines = [f"x{i} = {i}" for i in range(10)]
    short = "def short():\n" + "".join(f"    {x}\n" for x in lines[:9])  # 10 lines: at the limit
    long = "class C:\n    async def long(self):\n" + "".join(f"        {x}\n" for x in lines)  # 11 lines
    (pkg / "a.py").write_text(short + "\n\n" + long)
    assert long_functions(find_modules(tmp_path), 10, tmp_path) == ["gaitdata.a:long (11 lines, gaitdata/a.py:14)"]


def test_no_library_function_is_longer_than_the_limit() -> None:
    found = long_functions(MODULES)
    assert not found, (
        f"functions longer than {MAX_FUNCTION_LINES} lines (split each into a short orchestrator and named steps):\n"
        + "\n".join(found)
    )


# ---- one home for box geometry -------------------------------------------------------------------
_MIN_CALLS, _MAX_CALLS = {"min", "minimum", "fmin"}, {"max", "maximum", "fmax"}


def _extreme(node: ast.AST, names: dict[str, str]) -> str | None:
    """``"min"``/``"max"`` when ``node`` is a min/max call (builtin or numpy) or a name bound to one."""
    if isinstance(node, ast.Call):
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        return "min" if name in _MIN_CALLS else "max" if name in _MAX_CALLS else None
    return names.get(node.id) if isinstance(node, ast.Name) else None


def box_intersections(tree: ast.AST) -> list[tuple[str, int]]:
    """(function, line) of every ``min(...) - max(...)``: the overlap of two intervals, the heart of a box
    intersection, whether written inline or through names (``x1 = np.minimum(...); x1 - x0``)."""
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        names: dict[str, str] = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                pairs = (
                    zip(target.elts, value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                    else [(target, value)]
                )
                for t, v in pairs:
                    if isinstance(t, ast.Name) and (k := _extreme(v, {})) is not None:
                        names[t.id] = k
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Sub)
                and _extreme(node.left, names) == "min"
                and _extreme(node.right, names) == "max"
            ):
                found.append((fn.name, node.lineno))
    return found


def test_the_intersection_check_sees_every_way_of_writing_one() -> None:
    inline = "def iou(a, b):\n    return np.clip(np.minimum(a[2], b[2]) - np.maximum(a[0], b[0]), 0, None)\n"
    named = "def cover(b, o):\n    x0 = np.maximum(b[0], o[:, 0])\n    x1 = np.minimum(b[2], o[:, 2])\n    return x1 - x0\n"
    scalar = "def f(p, q):\n    x1, x2 = max(p[0], q[0]), min(p[2], q[2])\n    return max(0.0, x2 - x1)\n"
    plain = "def g(a, b):\n    lo = a.min()\n    return lo - b.max() + np.clip(a - b, 0, 1)\n"
    assert box_intersections(ast.parse(inline)) == [("iou", 2)]
    assert box_intersections(ast.parse(named)) == [("cover", 4)]
    assert box_intersections(ast.parse(scalar)) == [("f", 3)]
    assert box_intersections(ast.parse(plain)) == [("g", 3)]  # a.min() is a min call too: strict on purpose


def test_box_intersection_is_computed_in_one_place() -> None:
    found = sorted({
        f"{mod}:{fn} ({path.relative_to(REPO).as_posix()}:{line})"
        for mod, path in MODULES.items()
        for fn, line in box_intersections(ast.parse(path.read_text(encoding="utf-8")))
    })
    where = {f.split(" ")[0] for f in found}
    assert where == {"gaitdata.geometry:intersection_matrix"}, (
        "box intersection must be computed once, in gaitdata.geometry.intersection_matrix (use it, iou_matrix "
        "or clip_xyxy); found:\n" + "\n".join(found)
    )

if __name__ == "__main__":  # print the unit graph, e.g. to draw it
    for src in sorted({unit_of(m, MODULES) for m in MODULES}):
        deps = sorted({unit_of(a.target, MODULES) for a in ARROWS if unit_of(a.source, MODULES) == src} - {src})
        sys.stdout.write(f"{src} -> {', '.join(deps)}\n")
