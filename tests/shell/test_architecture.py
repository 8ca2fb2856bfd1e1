"""The layout rules of ARCHITECTURE.md, read from the source with ``ast``."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "geochips"

# Stages, bottom first; a module may import from its own stage or any below it.
STAGES = {
    "bottom": 0,
    "sources": 1,
    "io": 2,
    "labels": 3,
    "index": 4,
    "select": 5,
    "predict": 6,
    "loading": 7,
    "shell": 8,
}
SHELL = {"geochips", "geochips.__main__", "geochips.transforms"}
SHELL_PACKAGES = ("geochips.cli",)  # with its modules
# Pictures of indexes (they read scenes coarse) are the shell; geochips.plot.samples and
# .figures draw arrays only, at the bottom, so that ChipDataset.plot may use them.
SHELL |= {"geochips.plot", "geochips.plot.maps", "geochips.plot.scenes", "geochips.plot.splits"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def in_shell(module: str) -> bool:
    return module in SHELL or module.startswith(SHELL_PACKAGES)


def stage(module: str) -> int:
    if in_shell(module):
        return STAGES["shell"]
    if module == "geochips.index":
        return STAGES["index"]
    part = module.split(".")[1] if module.count(".") else ""
    return STAGES.get(part, STAGES["bottom"])


MODULES = {module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def imports(tree: ast.Module, *, top_level: bool):
    """Yield (imported module, line, is it at module level) for every geochips import."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def at_top(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return False
        return True

    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from geochips import hrefs" imports the module geochips.hrefs; "from
            # geochips.scene import Scene" imports geochips.scene.
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                for a in node.names
            ]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if (name == "geochips" or name.startswith("geochips.")) and (
                not top_level or at_top(node)
            ):
                yield name, node.lineno, at_top(node)


def resolve(name: str) -> str | None:
    """The geochips module an import names (``from geochips.io import reader`` -> reader)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_imports_point_down_the_stages():
    wrong = []
    for module, tree in MODULES.items():
        for name, line, _ in imports(tree, top_level=False):
            target = resolve(name)
            if target and target != module and stage(target) > stage(module):
                wrong.append(f"{module}:{line} imports {target} (a later stage)")
    assert not wrong, "\n".join(wrong)


def test_the_import_graph_has_no_cycle():
    graph = {
        module: {
            target
            for name, _, _ in imports(tree, top_level=True)
            if (target := resolve(name)) and target != module and not target.startswith(module)
        }
        for module, tree in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, node, nxt]))
            if not state.get(nxt):
                visit(nxt, [*path, node])
        state[node] = 2

    for module in graph:
        if not state.get(module):
            visit(module, [])


def test_no_function_local_import_of_geochips_outside_the_shell():
    local = [
        f"{module}:{line} imports {name} inside a function"
        for module, tree in MODULES.items()
        if not in_shell(module)
        for name, line, top in imports(tree, top_level=False)
        if not top
    ]
    assert not local, "\n".join(local)


def calls(tree: ast.Module, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            text = ast.unparse(func)
            if text in names or text.rpartition(".")[2] in {n for n in names if "." not in n}:
                yield text, node.lineno


def test_files_are_opened_and_gdal_configured_only_in_the_io_layer():
    gdal = {"rasterio.open", "rasterio.Env", "set_gdal_config", "WarpedVRT"}
    outside = [
        f"{module}:{line} calls {text}"
        for module, tree in MODULES.items()
        if not module.startswith("geochips.io") and module != "geochips.testing"
        for text, line in calls(tree, gdal)
    ]
    assert not outside, "\n".join(outside)


def test_torch_is_imported_only_in_the_loading_layer():
    outside = []
    for module, tree in MODULES.items():
        if module.startswith("geochips.loading") or module in ("geochips.cli.demo", "geochips"):
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            outside += [f"{module}:{node.lineno}" for n in names if n.split(".")[0] == "torch"]
    assert not outside, "torch imported outside geochips.loading: " + ", ".join(outside)


def test_no_module_below_the_index_imports_it():
    below = [
        f"{module}:{line}"
        for module, tree in MODULES.items()
        if stage(module) < STAGES["index"]
        for name, line, _ in imports(tree, top_level=False)
        if resolve(name) == "geochips.index"
    ]
    assert not below, "modules below the index import it: " + ", ".join(below)


def test_the_rules_see_the_modules_they_check():
    # Guards the guards: a rule reading no module would pass whatever the code did.
    assert {"geochips.io.reader", "geochips.loading.dataset", "geochips.index"} <= set(MODULES)
    assert stage("geochips.io.reader") == STAGES["io"]
    assert stage("geochips.select.splits") == STAGES["select"]
    reader = MODULES["geochips.io.reader"]
    assert list(calls(reader, {"rasterio.open"})), "the reader opens files: the rule must see it"
    assert any(resolve(n) == "geochips.scene" for n, _, _ in imports(reader, top_level=True))


def test_the_leakage_proof_imports_nothing_of_the_splitting():
    # check_leakage is an independent proof of a split: it, the conflict rule it applies and
    # the ground it compares must not use the code that makes splits (blocks, dealing).
    proof = (
        "geochips.select.leakage",
        "geochips.select.proof",
        "geochips.select.cells",
        "geochips.select.conflicts",
        "geochips.select.ground",
    )
    splitting = {"geochips.select.splits", "geochips.select.blocks"}
    assert set(proof) | splitting <= set(MODULES)
    used = [
        f"{module}:{line} imports {resolve(name)}"
        for module in proof
        for name, line, _ in imports(MODULES[module], top_level=False)
        if resolve(name) in splitting
    ]
    assert not used, "\n".join(used)
    # Guards the guard: the rule sees the imports of the splitting itself.
    seen = {resolve(n) for n, _, _ in imports(MODULES["geochips.select.splits"], top_level=True)}
    assert {"geochips.select.blocks", "geochips.select.conflicts"} <= seen


def test_the_leakage_proof_has_an_engine_of_its_own():
    # The split obeys conflicts(); the proof finds its pairs with select.proof, so that a
    # bug in one engine shows as a disagreement (tests/select/test_proof.py), not twice.
    engine = {"conflicts", "chip_ground", "comparisons"}
    used = [
        f"{module}:{line} calls {text}"
        for module in ("geochips.select.leakage", "geochips.select.proof", "geochips.select.cells")
        for text, line in calls(MODULES[module], engine)
    ]
    assert not used, "\n".join(used)
    assert list(calls(MODULES["geochips.select.leakage"], {"find_leaks"}))
    assert list(calls(MODULES["geochips.select.splits"], engine))  # the rule sees the split's
