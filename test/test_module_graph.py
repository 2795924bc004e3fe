"""The project's module graph, read from the source with `ast` (so imports inside functions count, and nothing is
imported to find out): core never imports ROS, the node side never imports the command-line layer, no import
cycles, and no module past 400 lines."""
import ast
import importlib.metadata
import pathlib
import re


ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("syncvp_core", "syncvp_ros")
GENERATED = ROOT / "syncvp_ros" / "msg"  # rosidl's output (docs/ros2-setup.md), not ours to lay out
MAX_LINES = 400


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
           if GENERATED not in p.parents}


def imported_names(name: str) -> set[str]:
    """Every module `name` imports, anywhere in its body, as absolute dotted names; `from X import y` counts as
    X.y when that is one of our modules (a submodule), else as X."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return out


GRAPH = {name: imported_names(name) for name in MODULES}


def ros_roots() -> set[str]:
    """Top-level import names that are ROS: those the ROS 2 wheels install, and the main ones by name for a colcon
    install, which has no wheel metadata (`is_ros` adds every *_msgs / *_interfaces package)."""
    wheels = {top for top, dists in importlib.metadata.packages_distributions().items()
              if any(d.lower().startswith("ros-") for d in dists)}
    return wheels | {"rclpy", "rosidl_runtime_py", "launch", "launch_ros", "ament_index_python", "syncvp_ros"}


def is_ros(imported: str, roots: set[str]) -> bool:
    top = imported.split(".")[0]
    return top in roots or re.fullmatch(r"\w+_(msgs|interfaces)", top) is not None


def test_the_graph_sees_relative_and_function_level_imports():
    """The reader itself: relative imports resolve, and an import inside a function is an edge."""
    assert "syncvp_core.data.synthetic.files" in GRAPH["syncvp_core.data.datasets"]  # from .synthetic.files import
    assert "syncvp_core.data.errors" in GRAPH["syncvp_core.data.synthetic.files"]  # from ..errors import
    assert "syncvp_core.data.cityscapes" in GRAPH["syncvp_core.data.datasets"]  # inside open_dataset


def test_core_never_imports_ros():
    roots = ros_roots()
    offenders = {name: sorted(i for i in imports if is_ros(i, roots))
                 for name, imports in GRAPH.items() if name.startswith("syncvp_core")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_node_side_never_imports_the_command_line_layer():
    offenders = {name: sorted(i for i in imports if i == "syncvp_core.cli" or i.startswith("syncvp_core.cli."))
                 for name, imports in GRAPH.items() if name.startswith("syncvp_ros")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_import_cycles():
    edges = {name: sorted(i for i in imports if i in MODULES and i != name) for name, imports in GRAPH.items()}
    cycles, state = [], {}  # state: 1 while on the depth-first path, 2 when done

    def visit(name, path):
        state[name] = 1
        for target in edges[name]:
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_module_is_longer_than_400_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
