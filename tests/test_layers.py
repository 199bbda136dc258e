"""The package's layers: an import only ever points down, and no module imports itself back.

core (configuration, database, locks, errors, formatting) -> runbook (causes, messages, report
rendering, scenarios, incident logic, triage, ingestion) -> defs (Dagster definitions) -> edges
(`pipeline`, `cli`, the `definitions` code location). A module may import its own layer or a lower
one, never a higher one; the import graph (module-level and function-level imports, and the
package `__init__` every import runs first) has no cycle.

Pure Python: it reads the sources with `ast` and imports nothing of the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "orchestration"

LAYERS = ("core", "runbook", "defs", "edges")

# The layer of every module, by its longest matching prefix (a package covers its submodules).
LAYER_OF_PREFIX = {
    "orchestration": "core",  # the package's own __init__
    "orchestration.core": "core",
    "orchestration.runbook": "runbook",
    "orchestration.defs": "defs",
    "orchestration.pipeline": "edges",
    "orchestration.cli": "edges",
    "orchestration.definitions": "edges",
    # Dagster's instance (its storage classes): the Dagster layer, left at the path that users'
    # dagster.yaml files name (`module: orchestration.instance`).
    "orchestration.instance": "defs",
}

# Function-level imports stay only for start-up time: a library that takes a large part of a
# second or more to import, loaded by the code path that needs it (Dagster and dagster-dbt for a
# pass, GX for the suites, matplotlib for a chart). Each carries a comment saying so just above
# its import block. They are listed here by (importing module, imported module), so that a new
# one must be argued for; a package import inside a function is never there to dodge a cycle.
STARTUP_IMPORTS: set[tuple[str, str]] = {
    # `costwatch prepare` / `run`: the other commands start without Dagster (seconds).
    ("orchestration.cli.run", "orchestration.defs.project"),
    ("orchestration.cli.run", "orchestration.pipeline"),
    # A pass that fails its preflight says so before Dagster is imported; `definitions` reads
    # dbt's manifest on import, so it is imported after `prepare_manifest` has built it.
    ("orchestration.pipeline", "orchestration.defs.project"),
    ("orchestration.pipeline", "orchestration.definitions"),
    ("orchestration.pipeline", "orchestration.instance"),
    ("orchestration.pipeline", "dagster"),
    # dbt's command line, imported when dbt runs in the pass's process, not when it loads.
    ("orchestration.defs.dbt_in_process", "dbt.cli.main"),
    ("orchestration.defs.dbt_in_process", "dbt_common.events.functions"),
    # Great Expectations takes seconds to import: loaded when a suite first runs.
    ("orchestration.runbook.expectations.runner", "great_expectations"),
    ("orchestration.runbook.expectations.runner", "great_expectations.data_context.types.base"),
    ("orchestration.runbook.expectations.runner", "great_expectations.core"),
    # genai-prices' data (0.2-0.3 s): only `costwatch prices refresh` reads it.
    ("orchestration.runbook.ingest.prices", "genai_prices.data"),
    ("orchestration.runbook.ingest.prices", "genai_prices.data_snapshot"),
    # pyarrow (0.3 s), only for a Langfuse export in Parquet.
    ("orchestration.runbook.ingest.langfuse", "pyarrow.parquet"),
    # pyarrow and DuckDB (~0.5 s), only when `costwatch sql` reads the Spark marts.
    ("orchestration.cli.sql", "orchestration.core.spark_files"),
    # ... when the Spark pass copies the marts the decisions read into PostgreSQL, and pyspark
    # (a JVM) only when the expectation suites run on Spark.
    ("orchestration.defs.decision_marts", "orchestration.core.spark_files"),
    ("orchestration.defs.expectations", "orchestration.core.spark_session"),
    ("orchestration.core.spark_session", "pyspark.sql"),
    # matplotlib (0.6 s), only when a chart is drawn.
    ("orchestration.runbook.triage.chart", "matplotlib.backends.backend_agg"),
    ("orchestration.runbook.triage.chart", "matplotlib.dates"),
    ("orchestration.runbook.triage.chart", "matplotlib.figure"),
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (of the package: the module a name comes from)
    line: int
    in_function: bool
    type_checking: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.ImportFrom, source: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of a package module in `path`, with where it stands."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = _resolve(node, source, is_package)
        if not is_ours(base):
            return [base]
        out = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append(sub if sub in modules else base)
        return sorted(set(out))

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in targets(node):
                found.append(Import(source, target, node.lineno, in_function, type_checking))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, in_function, True)
            for child in node.orelse:
                visit(child, in_function, type_checking)
            return
        nested = in_function or isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        for child in ast.iter_child_nodes(node):
            visit(child, nested, type_checking)

    visit(tree, False, False)
    return found


def is_ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def all_imports() -> list[Import]:
    """Every import statement of the package's modules, of any module."""
    modules = package_modules()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def package_imports() -> list[Import]:
    return [imp for imp in all_imports() if is_ours(imp.target)]


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(
    imports: list[Import], modules: Iterable[str] | None = None
) -> dict[str, set[str]]:
    """Module -> the modules its imports run: the target and the packages above it (each
    `__init__` runs first), except the importer's own packages (already being imported)."""
    modules = set(package_modules() if modules is None else modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        if imp.type_checking or not is_ours(imp.target):
            continue
        own = set(_ancestors(imp.source))
        for target in [*_ancestors(imp.target), imp.target]:
            if target in modules and target not in own and target != imp.source:
                graph[imp.source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(out)


def layer_of(module: str) -> str:
    best = max((p for p in LAYER_OF_PREFIX if module == p or module.startswith(p + ".")), key=len)
    return LAYER_OF_PREFIX[best]


def upward_imports(imports: list[Import]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return [
        f"{imp.source}:{imp.line} ({layer_of(imp.source)}) imports {imp.target} "
        f"({layer_of(imp.target)})"
        for imp in imports
        if is_ours(imp.target) and rank[layer_of(imp.target)] > rank[layer_of(imp.source)]
    ]


def function_level_imports(imports: list[Import]) -> list[Import]:
    return [imp for imp in imports if imp.in_function and not imp.type_checking]


def _commented(lines: list[str], line: int) -> bool:
    """The import at `line` (1-based), or the block of imports it stands in, has a comment
    just above it."""
    i = line - 2
    while i >= 0 and (not lines[i].strip() or lines[i].strip().startswith(("import ", "from "))):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


# -- the rule -------------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    for module in package_modules():
        assert layer_of(module) in LAYERS, module


def test_no_import_cycle() -> None:
    found = cycles(import_graph(package_imports()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_imports_point_down_the_layers() -> None:
    wrong = upward_imports(package_imports())
    assert not wrong, "imports against the layer rule:\n" + "\n".join(wrong)


def test_function_level_imports_are_for_startup_time_only() -> None:
    """Each remaining one is listed in STARTUP_IMPORTS and carries a comment saying why."""
    modules = package_modules()
    unlisted, uncommented = [], []
    for imp in function_level_imports(all_imports()):
        if (imp.source, imp.target) not in STARTUP_IMPORTS:
            unlisted.append(f"{imp.source}:{imp.line} imports {imp.target}")
        if not _commented(modules[imp.source].read_text().splitlines(), imp.line):
            uncommented.append(f"{imp.source}:{imp.line}")
    assert not unlisted, "function-level imports not in STARTUP_IMPORTS:\n" + "\n".join(unlisted)
    assert not uncommented, "function-level imports without a comment:\n" + "\n".join(uncommented)


def test_package_imports_name_existing_modules() -> None:
    """A module that moved leaves no import of its old name behind (in a function, it would
    only fail when that code runs)."""
    modules = package_modules()
    missing = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in package_imports()
        if imp.target not in modules
    ]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def _module_names(path: Path) -> set[str]:
    """The names a module binds at its top level (also under `if` / `try`)."""
    names: set[str] = set()

    def bind(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for child in ast.iter_child_nodes(node):
                bind(child)
        elif isinstance(node, ast.ExceptHandler):
            for child in node.body:
                bind(child)

    for node in ast.parse(path.read_text()).body:
        bind(node)
    return names


def test_names_imported_from_the_package_exist() -> None:
    """`from orchestration.x import name` anywhere (package, tests, bench, inside functions
    too) names something module x defines: a name that moved to another module fails here, not
    when that code path first runs."""
    modules = package_modules()
    defined: dict[str, set[str]] = {}
    wrong = []
    for folder in (PACKAGE, "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if not is_ours(node.module):
                    continue
                if node.module not in modules:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
                    continue
                if node.module not in defined:
                    defined[node.module] = _module_names(modules[node.module])
                for alias in node.names:
                    name = alias.name
                    if name == "*" or f"{node.module}.{name}" in modules:
                        continue
                    if name not in defined[node.module]:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{name}")
    assert not wrong, "imports of names that are not there:\n" + "\n".join(wrong)


def test_startup_imports_are_all_still_there() -> None:
    """A stale entry would let a new import in without a reason."""
    present = {(imp.source, imp.target) for imp in function_level_imports(all_imports())}
    assert STARTUP_IMPORTS <= present, sorted(STARTUP_IMPORTS - present)


# -- the checker itself, on small trees ----------------------------------------------------


def test_cycles_finds_a_cycle_and_only_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("code", "in_function", "type_checking"),
    [
        ("from orchestration.core import database\n", False, False),
        ("def f():\n    from orchestration.core import database\n", True, False),
        ("if TYPE_CHECKING:\n    from orchestration.core import database\n", False, True),
    ],
)
def test_imports_of_sees_where_an_import_stands(
    tmp_path: Path, code: str, in_function: bool, type_checking: bool
) -> None:
    path = tmp_path / "m.py"
    path.write_text(code)
    modules = {"orchestration.core.database": path}
    (found,) = imports_of("orchestration.x", path, modules)
    assert (found.target, found.in_function, found.type_checking) == (
        "orchestration.core.database",
        in_function,
        type_checking,
    )


def test_upward_imports_flags_only_a_lower_layer_importing_a_higher_one() -> None:
    down = Import("orchestration.defs.dbt", "orchestration.core.database", 1, False, False)
    up = Import("orchestration.core.database", "orchestration.defs.dbt", 1, False, False)
    assert upward_imports([down]) == []
    assert upward_imports([up]) == [
        "orchestration.core.database:1 (core) imports orchestration.defs.dbt (defs)"
    ]


def test_package_init_counts_as_imported() -> None:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first: a cycle through them counts."""
    imps = [
        Import("orchestration.runbook.x.m", "orchestration.runbook.y.n", 1, False, False),
        Import("orchestration.runbook.y", "orchestration.runbook.x.k", 1, False, False),
    ]
    graph = {"orchestration.runbook.x.m": set(), "orchestration.runbook.y": set()}
    modules = set(graph) | {"orchestration.runbook.y.n", "orchestration.runbook.x.k"}
    edges = import_graph(imps, modules)
    assert "orchestration.runbook.y" in edges["orchestration.runbook.x.m"]


def test_commented_reads_the_comment_above_an_import_block() -> None:
    lines = ["def f():", "    # start-up time", "    import a", "    import b", "", "    import c"]
    assert _commented(lines, 4) and _commented(lines, 6)
    assert not _commented(["def f():", "    import a"], 2)


if __name__ == "__main__":  # a report: python tests/test_layers.py
    imps = all_imports()
    found = cycles(import_graph([i for i in imps if is_ours(i.target)]))
    for c in found:
        print("cycle:", " <-> ".join(c))
    for line in upward_imports([i for i in imps if is_ours(i.target)]):
        print("upward:", line)
    inner = function_level_imports(imps)
    for imp in inner:
        print(f"function-level: {imp.source}:{imp.line} -> {imp.target}")
    statements = {(i.source, i.line) for i in inner}
    ours = {(i.source, i.line) for i in inner if is_ours(i.target)}
    print(
        f"{len(found)} cycles; {len(statements)} function-level import statements "
        f"({len(ours)} of package modules)"
    )
