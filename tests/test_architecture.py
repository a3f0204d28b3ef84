"""The dependency direction of docs/architecture.md holds: no import circle, no import upward."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# docs/architecture.md's layers, bottom first; a module may import its own layer and those below.
LAYERS = [
    {"errors", "files", "hub", "tokenizers", "layers", "generation", "metrics"},
    {"convert", "peft"},
    {"models"},
    {"data", "training"},
    {"export", "prompting"},
    {"cli"},
]


def layer_of(module):
    part = module.split(".")[1] if module.count(".") else ""
    return next((i for i, names in enumerate(LAYERS) if part in names), None)


def module_imports():
    """{tfllm module: the tfllm modules it imports at module level (function-level imports are lazy)}."""
    graph = {}
    for path in sorted((ROOT / "tfllm").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfllm"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("tfllm.")}
        graph[name] = imported
    return graph


def find_cycle(graph):
    """One import circle as a list of modules, or None (submodule imports count as edges, as Python runs them)."""
    state, stack = {}, []

    def edges(module):
        for target in graph.get(module, ()):
            # importing a.b.c runs a, a.b and a.b.c
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in graph and prefix != module and not module.startswith(prefix + "."):
                    yield prefix

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in edges(module):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in graph:
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_no_import_circle():
    graph = module_imports()
    assert len(graph) > 50
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"tfllm.a": {"tfllm.b"}, "tfllm.b": {"tfllm.c"}, "tfllm.c": {"tfllm.a"}}) == [
        "tfllm.a", "tfllm.b", "tfllm.c", "tfllm.a"]


def test_imports_point_down_the_layers():
    upward = []
    for module, imported in module_imports().items():
        if layer_of(module) is None:
            continue
        for target in imported:
            if layer_of(target) is not None and layer_of(target) > layer_of(module):
                upward.append(f"{module} imports {target}")
    assert not upward
    assert all(layer_of(m) is not None for m in module_imports() if m.count(".") and m != "tfllm")


# `import tfllm` defines no absl flag: tests/test_package.py (its fresh process imports every module).
