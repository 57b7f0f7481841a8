"""Rules of the layout (see DESIGN.md): seglib has no import cycles, never imports streamlit or the
app (ui/, pages/), and importing it changes no environment variable or library setting."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seglib"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth (function-level
    imports too: a lazy import that dodges a cycle is still a cycle). Relative imports are
    resolved; ``from pkg import x`` counts ``pkg.x`` when x is a module, else ``pkg``."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            out += [(t, node.lineno) for t in subs] or [(target, node.lineno)]
    return out


def _graph() -> dict[str, dict[str, int]]:
    """seglib module -> {seglib module it imports: line}. Importing ``a.b.c`` also runs the
    packages ``a.b`` and ``a`` first, unless the importer lies inside them already."""
    mods = _modules()
    known = set(mods)
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for name, path in mods.items():
        own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        if path.name == "__init__.py":
            own.add(name)
        for target, line in _imports(path, name, known):
            parts = target.split(".")
            for k in range(len(parts), 0, -1):
                t = ".".join(parts[:k])
                if t in known and t != name and t not in own:
                    graph[name].setdefault(t, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for comp in sccs:  # walk inside the component from its first module back to it
        members, start = set(comp), min(comp)
        path, seen = [start], {start}
        while True:
            nxt = sorted(w for w in graph[path[-1]] if w in members)
            back = [w for w in nxt if w == start]
            if back and len(path) > 1:
                cycles.append(path + [start])
                break
            step = next((w for w in nxt if w not in seen), None)
            if step is None:
                cycles.append(path + [nxt[0]])
                break
            path.append(step)
            seen.add(step)
    return cycles


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


def test_relative_imports_are_resolved():
    graph = _graph()
    assert "seglib.data.dataset" in graph["seglib.data"]             # from .dataset import ...
    assert "seglib.data.npz" in graph["seglib.data.open"]            # from .npz import NpzDataset
    assert "seglib.paths" in graph["seglib.cache"]                   # from .paths import cache_dir
    assert "seglib.data" not in graph["seglib.data.io"]              # its own package is already running


def test_no_import_cycles_in_seglib():
    graph = _graph()
    found = [" -> ".join(f"{m} (line {graph[m][n]})" if n else m for m, n in zip(c, c[1:] + [None], strict=True))
             for c in _cycles(graph)]
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_seglib_never_imports_streamlit_or_the_app():
    offenders = []
    for name, path in _modules().items():
        for target, line in _imports(path, name, set()):
            if target.split(".")[0] in ("streamlit", "ui", "pages", "app"):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offenders == []


def test_importing_seglib_changes_no_settings():
    """Every seglib module imported in a fresh interpreter: no streamlit, no environment
    variable set, PIL's decompression-bomb limit untouched (entry points set what they need)."""
    code = """
import importlib, os, pkgutil, sys
import PIL.Image
for dep in ("torch", "albumentations", "cv2", "scipy", "sklearn", "sqlalchemy", "plotly", "pandas",
            "segmentation_models_pytorch", "timm", "safetensors", "cleanlab", "tqdm"):
    try:  # what third-party libraries do to the environment on import is theirs, not ours
        importlib.import_module(dep)
    except ImportError:
        pass
env, pixels = dict(os.environ), PIL.Image.MAX_IMAGE_PIXELS
import seglib
for m in pkgutil.walk_packages(seglib.__path__, "seglib."):
    if m.name != "seglib.__main__":
        importlib.import_module(m.name)
assert "streamlit" not in sys.modules, "streamlit imported"
changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
assert not changed, f"environment changed on import: {changed}"
assert PIL.Image.MAX_IMAGE_PIXELS == pixels, "PIL.Image.MAX_IMAGE_PIXELS changed on import"
"""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_ALBUMENTATIONS_UPDATE", "HF_HUB_OFFLINE")}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_app_opens_the_review_store_in_one_place():
    """One engine per database in the app process: only ui/data.py builds a ReviewStore."""
    app_files = [ROOT / "app.py", *sorted((ROOT / "ui").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py"))]
    builders = [str(p.relative_to(ROOT)) for p in app_files if "ReviewStore(" in p.read_text()]
    assert builders == ["ui/data.py"]
