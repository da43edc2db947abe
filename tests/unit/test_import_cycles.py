"""No import cycles between the project's own modules, imports inside functions included.

A lazy import inside a function hides a cycle from Python at start-up, not
from the next engineer: when two modules need each other, the shared piece
gets its own home (ARCHITECTURE.md). This reads the source with `ast`, so
every import counts wherever it is written: module level, in a function,
under `if TYPE_CHECKING:`.
"""

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# Top-level folders that hold code but are not the product's packages.
NOT_PRODUCT = {"tests", "bench", "bin", "templates", "static", "node_modules"}


def first_party_packages(root=PROJECT):
    """Every top-level app or package of the project, found rather than listed, so new apps are covered."""
    return sorted(
        path.name for path in root.iterdir()
        if path.is_dir() and not path.name.startswith((".", "_")) and path.name not in NOT_PRODUCT
        and ((path / "__init__.py").exists() or (path / "apps.py").exists())
    )


def project_modules(root=PROJECT):
    """{dotted module name: file} for every .py file in the first-party packages."""
    modules = {}
    for package in first_party_packages(root):
        for path in (root / package).rglob("*.py"):
            relative = path.relative_to(root).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            modules[".".join(parts)] = path
    return modules


def imported_modules(module, path, modules):
    """The first-party modules each import statement of the file names, relative imports resolved.

    An import counts as an edge to the most specific module it names: `from a import b` is
    module a.b when that exists, else the name b of module a.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([origin] if origin else []))
            names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                yield name


def import_graph(root=PROJECT):
    """{module: set of first-party modules it imports}."""
    modules = project_modules(root)
    return {
        module: {target for target in imported_modules(module, path, modules) if target != module}
        for module, path in modules.items()
    }


def cycles(graph):
    """One cycle per strongly connected group of modules (Tarjan), each as a path back to its start."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for neighbour in sorted(graph[node]):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, group) for group in groups]


def _path_through(graph, group):
    """A shortest way from the group's first module back to itself, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for neighbour in sorted(graph[node] & group):
                if neighbour == start:
                    return paths[node] + [start]
                if neighbour not in paths:
                    paths[neighbour] = paths[node] + [neighbour]
                    following.append(neighbour)
        frontier = following
    raise AssertionError(f"no cycle through {group}")


def test_the_project_s_modules_import_each_other_without_cycles():
    found = cycles(import_graph())
    assert not found, "Import cycles between the project's modules (give the shared piece its own home):\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in found
    )


# --- the walker itself, on a small made-up project -------------------------------------


def _project(tmp_path, files):
    for relative, source in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return tmp_path


def test_it_finds_a_cycle_held_open_by_an_import_inside_a_function(tmp_path):
    root = _project(tmp_path, {
        "shop/__init__.py": "",
        "shop/orders.py": "from shop.billing import charge\n",
        "shop/billing.py": "def charge():\n    from .orders import place\n",
    })
    assert cycles(import_graph(root)) == [["shop.billing", "shop.orders", "shop.billing"]]


def test_it_resolves_from_dot_import_module_and_finds_new_apps_by_their_apps_py(tmp_path):
    root = _project(tmp_path, {
        "alerts/apps.py": "",
        "alerts/services.py": "from . import tasks\n",
        "alerts/tasks.py": "import alerts.services\n",
        "tests/__init__.py": "",
        "tests/test_x.py": "import alerts.services\n",
    })
    assert first_party_packages(root) == ["alerts"]
    assert cycles(import_graph(root)) == [["alerts.services", "alerts.tasks", "alerts.services"]]


def test_one_way_imports_and_third_party_modules_are_not_cycles(tmp_path):
    root = _project(tmp_path, {
        "core/__init__.py": "import json\nfrom django.db import models\n",
        "core/a.py": "from core import b, c\nfrom .b import thing\n",
        "core/b.py": "",
        "core/c.py": "",
        "core/sub/__init__.py": "",
        "core/sub/d.py": "from .. import a, VERSION\nfrom ..b import thing\n",
    })
    graph = import_graph(root)
    assert graph["core.a"] == {"core.b", "core.c"} and graph["core.sub.d"] == {"core.a", "core", "core.b"}
    assert cycles(graph) == []
