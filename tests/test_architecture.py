"""The layering of ARCHITECTURE.md, checked on the source: who may import whom, and what loads."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PKG = REPO / "fer_bench"

# package (first component under fer_bench) -> the fer_bench packages it may import, at any depth
# of the module (function-level imports count too).  Keep in step with ARCHITECTURE.md.
ALLOWED = {
    "errors": set(),
    "classes": set(),
    "files": set(),
    "registry": {"errors"},
    "weights": {"errors", "registry"},
    "stats": set(),
    "evaluation": {"stats"},
    "transfer": {"errors", "evaluation", "data", "methods", "metrics", "nn", "settings", "train", "resolve", "weights"},
    "score": {"classes", "errors", "evaluation", "files", "metrics", "settings", "validation", "data"},
    "nn": {"errors"},
    "metrics": {"nn"},
    "data": {"classes", "errors", "files", "registry", "synth"},
    "synth": {"classes", "errors", "files", "registry", "data"},
    "methods": {"classes", "errors", "registry", "nn", "metrics", "weights"},
    "callbacks": {"errors", "files", "metrics", "nn"},
    "settings": {"errors"},
    "validation": {"errors", "settings", "data", "methods", "weights"},
    "resolve": {"errors", "settings", "validation", "data", "methods", "weights"},
    "train": {"errors", "settings", "validation", "resolve", "data", "methods", "nn", "callbacks", "weights",
              "evaluation", "bundle"},
    "bench": {"classes", "errors", "files", "settings", "validation", "resolve", "train", "data", "methods", "weights",
              "stats", "evaluation", "transfer", "callbacks", "registry", "score", "provenance"},
    "skeletons": {"errors", "data", "methods"},
    "provenance": set(),
    "bundle": {"errors", "provenance", "data", "methods", "transfer", "weights"},
    "onnx_export": {"errors", "bundle"},
    "predict": {"errors", "files", "bundle", "data"},
    "cli": {"errors", "registry", "settings", "validation", "files", "train", "bench", "data", "synth", "methods", "nn",
            "weights", "stats", "evaluation", "transfer", "score", "skeletons", "bundle", "predict", "onnx_export"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)  # "from fer_bench import settings"
    return {n for n in found if n == "fer_bench" or n.startswith("fer_bench.")}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_imports_only_what_its_layer_allows():
    bad = []
    for module, path in _modules():
        own = _package(module)
        assert own in ALLOWED, f"{module}: a new top-level package; add it to ARCHITECTURE.md and ALLOWED"
        for name in _imports(path, module):
            other = _package(name)
            if name == "fer_bench" or other == own or other not in ALLOWED:
                continue  # fer_bench.__version__, own package, or a name imported from fer_bench itself
            if other not in ALLOWED[own]:
                bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(bad)


def test_a_dataset_module_imports_no_other_dataset_module():
    from fer_bench.data import DATASETS

    dataset_modules = {cls.__module__ for _, cls in DATASETS.items()}
    bad = []
    for module, path in _modules():
        if not module.startswith("fer_bench.data."):
            continue
        for name in _imports(path, module):
            target = next((m for m in dataset_modules if name == m or name.startswith(m + ".")), None)
            if target and target != module:
                bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(bad)


def _loaded_after(code: str) -> dict:
    probe = (f"import sys\n{code}\n"
             "import json; print(json.dumps({m: m in sys.modules for m in "
             "('torch', 'lightning', 'decord', 'cv2', 'pandas', 'fer_bench.methods', 'fer_bench.data')}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_methods_loads_no_dataset_library():
    loaded = _loaded_after("import fer_bench.methods")
    assert not loaded["decord"] and not loaded["cv2"] and not loaded["pandas"] and not loaded["fer_bench.data"]


def test_help_and_leaderboard_commands_do_not_import_torch(tmp_path):
    boards = tmp_path / "boards"
    (boards / "s").mkdir(parents=True)
    (boards / "s" / "v001.csv").write_text(
        "suite,method,dataset,seed,war,uar,status\ns,resnet18,rafdb,0,0.8,0.7,ok\ns,resnet18,rafdb,1,0.82,0.71,ok\n")
    (boards / "papers.csv").write_text("method,dataset,metric,value,source\nresnet18,rafdb,war,86.5,x\n")
    loaded = _loaded_after(
        "from fer_bench.cli import main\n"
        "import contextlib, io\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    main(['leaderboard', 'show', 's', '--leaderboards', {str(boards)!r}])\n"
        "assert '86.50' in buf.getvalue() and '-5.50' in buf.getvalue(), buf.getvalue()\n"
        "from fer_bench.cli import build_parser\n"
        "build_parser().format_help()\n")
    assert not loaded["torch"] and not loaded["lightning"] and not loaded["fer_bench.methods"]


@pytest.mark.parametrize("module", ["fer_bench.settings", "fer_bench.cli", "fer_bench.bench.leaderboard",
                                    "fer_bench.bench.regress", "fer_bench.bench.suite", "fer_bench.bench.compare",
                                    "fer_bench.bench.page",
                                    "fer_bench.stats", "fer_bench.evaluation"])
def test_light_modules_import_without_torch(module):
    assert not _loaded_after(f"import {module}")["torch"]


def _import_graph() -> dict[str, set[str]]:
    """module -> the fer_bench modules it imports (function-level imports too), each name resolved to the
    module that holds it (``from fer_bench.bench import worker`` -> ``fer_bench.bench.worker``)."""
    mods = dict(_modules())
    graph = {}
    for module, path in mods.items():
        deps = set()
        for name in _imports(path, module):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
        graph[module] = deps
    return graph


def _package_of(module: str) -> str:
    path = dict(_modules())[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def import_circles(graph: dict[str, set[str]], same_package=_package_of) -> list[list[str]]:
    """The circles of imports between modules of one package (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if same_package(w) != same_package(v):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle_inside_any_package():
    circles = import_circles(_import_graph())
    assert not circles, "import circles (ARCHITECTURE.md: bench/ imports one way, downwards):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_the_circle_check_sees_a_circle_through_a_function_level_import():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}, "q.x": {"p.a"}}
    assert import_circles(graph, lambda m: m.rpartition(".")[0]) == [["p.a", "p.b", "p.c"]]
    graph["p.c"] = set()
    assert import_circles(graph, lambda m: m.rpartition(".")[0]) == []
