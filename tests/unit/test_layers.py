"""The layers of ocirun (docs/architecture.md): imports only point down. Every import
statement of every module, those inside functions too, is read here; a module may
import its own package, or a lower layer, never a higher layer or another package of
its own layer (cgroups and seccomp never import each other; state does not ask
cgroups; config knows nothing of the syscall layer)."""
import ast
import os

from support import REPO

# name (a module or package) -> layer, lowest first
LAYERS = {
    "ocirun": 0, "ocirun.errors": 0, "ocirun.tables": 0, "ocirun.fs": 0, "ocirun._sys": 0,
    "ocirun.kernel": 1, "ocirun.log": 1,
    "ocirun.timings": 2,
    "ocirun.config": 3,
    "ocirun.state": 4, "ocirun.cgroups": 4, "ocirun.seccomp": 4, "ocirun.hooks": 4,
    "ocirun.linux": 5,
    "ocirun.lifecycle": 6, "ocirun.features": 6,
    "ocirun.api": 7, "ocirun.bench": 7,
    "ocirun.cli": 8,
    "ocirun.boot": 9, "ocirun.__main__": 9,
}


def unit(module):
    """The longest LAYERS name that `module` is or is inside of."""
    best = None
    for name in LAYERS:
        if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best)):
            best = name
    return best


def modules():
    base = os.path.join(REPO, "ocirun")
    for dirpath, _, files in os.walk(base):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, REPO)[:-3].replace("/", ".")
                yield name.removesuffix(".__init__"), path


def imports(path):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_every_module_has_a_layer():
    assert not [name for name, _ in modules() if unit(name) is None]


def test_imports_point_down():
    wrong = []
    for name, path in modules():
        src = unit(name)
        for imported in imports(path):
            if not imported.startswith("ocirun") or imported == "ocirun":
                continue
            dst = unit(imported)
            if dst == src:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                wrong.append(f"{name} (layer {LAYERS[src]}) imports {imported} "
                             f"(layer {LAYERS[dst]})")
    assert not wrong, "\n".join(wrong)


def test_the_test_can_fail():
    """A planted upward import is caught (the checker reads what it should)."""
    assert unit("ocirun.config.plan") == "ocirun.config"
    assert LAYERS[unit("ocirun.linux.init")] > LAYERS[unit("ocirun.kernel")]
    assert LAYERS[unit("ocirun.state")] == LAYERS[unit("ocirun.cgroups")]
