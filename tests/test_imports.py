"""Dependencies flow one way: no import cycle among the project's modules (imports inside functions
count too: a lazy import only hides a cycle), hydra_plugins depend on hw_hparams and never the reverse
at import time, analysis/ reads run folders without the training code (of hw_hparams, only the
dependency-free modules listed here), and one module prints errors."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hw_hparams", "hydra_plugins", "analysis")
# The modules outside analysis/ it may import: each (and every package above it, which Python runs
# first) imports the standard library only, so no training code comes with them.
ANALYSIS_MAY_IMPORT = {
    "hw_hparams.config.errors",
    "hw_hparams.config.roles",
    "hw_hparams.config.suggest",
    "hw_hparams.runs.format",
}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages under `root`."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, at module level) for every import statement of module `name`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a project module a.b: a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, node.lineno, id(node) in top))
    return out


def graph(root: Path) -> dict[str, list[tuple[str, int, bool]]]:
    found = modules(root)
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, list[tuple[str, int, bool]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def describe(component: list[str], edges: dict[str, list[tuple[str, int, bool]]]) -> str:
    return "; ".join(
        f"{a} -> {b} (line {line}{'' if top else ', inside a function'})"
        for a in component
        for b, line, top in edges[a]
        if b in component
    )


def test_the_project_has_no_import_cycle():
    edges = graph(ROOT)
    assert len(edges) > 70  # the walk found the project's modules
    assert "hw_hparams.train.loop" in {b for b, _, _ in edges["hw_hparams.train.lifecycle"]}
    assert "analysis.read.labels" in {b for b, _, _ in edges["analysis.read.runs"]}  # relative imports resolved
    found = cycles(edges)
    assert not found, "import cycles: " + " | ".join(describe(c, edges) for c in found)


# hw_hparams' packages from the ground up, in the order of the pipeline: a package imports only those
# below it (lazy imports inside functions count). The commands' entry modules stand above them all
# (hw_hparams.homework, each package's __main__), with hw_hparams.plugins, which registers hydra_plugins.
LAYERS = (
    "hw_hparams.config",
    "hw_hparams.slurm",
    "hw_hparams.data",
    "hw_hparams.engine",
    "hw_hparams.runs",
    "hw_hparams.trackers",
    "hw_hparams.train",
    "hw_hparams.study",
    "hw_hparams.bench",
)


def layer(module: str) -> int | None:
    """The layer of a module of hw_hparams' packages; None for the entry modules and anything else."""
    if module.endswith(".__main__"):
        return None
    return next((i for i, p in enumerate(LAYERS) if module == p or module.startswith(p + ".")), None)


def test_every_package_imports_only_the_packages_below_it():
    found = modules(ROOT)
    entries = {m for m in found if m.startswith("hw_hparams.") and layer(m) is None and not m.endswith(".__main__")}
    assert entries == {"hw_hparams.homework", "hw_hparams.plugins"}, "a module outside the layers"
    upward = [
        f"{a} -> {b} (line {line})"
        for a, targets in graph(ROOT).items()
        for b, line, _ in targets
        if layer(a) is not None
        and (layer(b) is None and b.startswith(("hw_hparams", "hydra_plugins")) or layer(a) < (layer(b) or 0))
    ]
    assert not upward, "imports that run up the layers: " + "; ".join(upward)


def test_analysis_reads_then_renders_then_says():
    """analysis/read/ (run folders in, never a figure or a word of a report) imports neither rendering
    nor the report's content; analysis/render/ (document, LaTeX, figures, tables) never the content."""
    order = ("analysis.read", "analysis.render", "analysis")
    level = {
        m: next(i for i, p in enumerate(order) if m == p or m.startswith(p + "."))
        for m in modules(ROOT)
        if m.startswith("analysis")
    }
    upward = [
        f"{a} -> {b} (line {line})"
        for a, targets in graph(ROOT).items()
        for b, line, _ in targets
        if a in level and b in level and level[b] > level[a]
    ]
    assert not upward, "imports that run up analysis' layers: " + "; ".join(upward)


def test_the_walk_finds_a_cycle_that_a_lazy_import_hides(tmp_path):
    pkg = tmp_path / "hw_hparams"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from hw_hparams import a\n    return a\n")
    (pkg / "c.py").write_text("import hw_hparams.a\n")
    edges = graph(tmp_path)
    assert cycles(edges) == [["hw_hparams.a", "hw_hparams.b"]]
    assert "hw_hparams.b -> hw_hparams.a (line 2, inside a function)" in describe(cycles(edges)[0], edges)


def test_hydra_plugins_depend_on_hw_hparams_never_the_reverse_at_import_time():
    for name, targets in graph(ROOT).items():
        if name.startswith("hw_hparams"):
            top = [(b, line) for b, line, at_top in targets if at_top and b.startswith("hydra_plugins")]
            assert not top, f"{name} imports {top} at import time"


def test_analysis_reads_run_folders_without_the_training_code():
    for name, targets in graph(ROOT).items():
        if name.startswith("analysis"):
            assert not [b for b, _, _ in targets if not b.startswith("analysis") and b not in ANALYSIS_MAY_IMPORT], name


def non_stdlib_imports(path: Path) -> list[str]:
    """Every import of the file at `path`, anywhere in it, of a module outside the standard library
    (a relative import, of a project module, counts)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        found += [n for n in names if n.split(".")[0] not in {*sys.stdlib_module_names, "__future__"}]
    return found


def test_what_analysis_may_import_of_hw_hparams_imports_the_standard_library_only():
    found = modules(ROOT)
    for name in ANALYSIS_MAY_IMPORT:
        parts = name.split(".")
        for module in (".".join(parts[:n]) for n in range(1, len(parts) + 1)):  # packages first: Python runs them
            assert not non_stdlib_imports(found[module]), (
                f"{module} (imported by analysis/): {non_stdlib_imports(found[module])}"
            )


def test_an_import_outside_the_standard_library_is_found(tmp_path):
    (tmp_path / "m.py").write_text("import os, json\nfrom . import sibling\ndef f():\n    import numpy.linalg\n")
    assert non_stdlib_imports(tmp_path / "m.py") == [".", "numpy.linalg"]


def test_errors_are_printed_in_one_place():
    printing = re.compile(r"""print\(\s*f?["']error:""")
    for package in ("hw_hparams", "hydra_plugins"):
        for path in (ROOT / package).rglob("*.py"):
            if path != ROOT / "hw_hparams" / "config" / "errors.py":
                assert not printing.search(path.read_text()), f"{path}: use hw_hparams.config.errors.say / fail"


def test_the_commands_import_torchvision_only_when_they_read_data_or_build_a_network():
    # torchvision's import costs ~1.4 s: a command that stops at a config error, --help, or the analysis never pays it
    import subprocess

    entries = "hw_hparams.train.__main__, hw_hparams.homework, hw_hparams.data.__main__, analysis.__main__"
    code = f"import sys, {entries}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"imported at the top of a command's modules: {loaded}"
