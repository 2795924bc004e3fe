"""The node's parameters are written down three times besides their declaration (`syncvp_ros.parameters.SPECS`):
config/predictor.yaml, the README table and the docs/node.md table. These tests keep the four in step."""
import pathlib
import re

import yaml

from syncvp_ros.parameters import SPECS

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = {s.name: s for s in SPECS}
TYPE_NAMES = {bool: "bool", int: "int", float: "double", str: "string"}


def yaml_values(node, prefix="") -> dict:
    """Nested YAML mappings as dotted parameter names, the way ROS 2 reads a params file."""
    out = {}
    for key, value in node.items():
        out.update(yaml_values(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def table_rows(path: pathlib.Path, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after `heading`, without its header and rule rows."""
    lines = path.read_text().splitlines()
    start = lines.index(heading)
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def documented(rows: list[list[str]]) -> dict[str, tuple[object, str, list[str]]]:
    """name -> (default, type name, the whole row) from rows whose first cell names one or more parameters; a row
    may name several with one shared default or one default each, and "string, int" types likewise."""
    out = {}
    for row in rows:
        names = re.findall(r"`([^`]+)`", row[0])
        defaults = [yaml.safe_load(text) for text in re.findall(r"`([^`]*)`", row[2])]
        types = [t.strip() for t in row[1].split(",")]
        defaults, types = (d * len(names) if len(d) == 1 else d for d in (defaults, types))
        assert len(defaults) == len(types) == len(names), row
        out.update({name: (default, kind, row) for name, default, kind in zip(names, defaults, types)})
    return out


def same_names(written, where: str) -> None:
    missing, unknown = sorted(set(SPEC) - set(written)), sorted(set(written) - set(SPEC))
    assert not missing and not unknown, f"{where}: missing {missing}, not declared {unknown}"


def check_names_defaults_and_types(table: dict, where: str) -> None:
    same_names(table, where)
    for name, (default, kind, _) in table.items():
        spec = SPEC[name]
        assert default == spec.default and type(default) is type(spec.default), (where, name, default)
        assert kind == TYPE_NAMES[type(spec.default)], (where, name, kind)


def test_config_file_holds_every_declared_parameter_at_its_default():
    (body,) = yaml.safe_load((ROOT / "config" / "predictor.yaml").read_text()).values()
    values = yaml_values(body["ros__parameters"])
    same_names(values, "config/predictor.yaml")
    for name, value in values.items():  # the type too: rclpy rejects an int for a double
        assert value == SPEC[name].default and type(value) is type(SPEC[name].default), name


def test_readme_table_agrees_with_the_declarations():
    table = documented(table_rows(ROOT / "README.md", "### Parameters (`config/predictor.yaml`)"))
    check_names_defaults_and_types(table, "README.md")
    for name, (_, _, row) in table.items():
        assert ("(read-only)" in row[-1]) == SPEC[name].read_only, name


def test_node_doc_table_agrees_with_the_declarations():
    table = documented(table_rows(ROOT / "docs" / "node.md", "## Parameters"))
    check_names_defaults_and_types(table, "docs/node.md")
    for name, (_, _, row) in table.items():
        spec, limits, read_only = SPEC[name], row[3], row[4]
        if spec.range is not None:
            lo, hi = (type(spec.default)(v) for v in spec.range)
            assert limits == f"{lo} … {hi}", name
        elif spec.choices:
            assert limits == spec.choices, name
        assert (read_only == "yes") == spec.read_only, name
