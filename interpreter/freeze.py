"""Put ocirun's modules into a CPython 3.11 source tree as frozen modules (for
interpreter/build.sh; run with /usr/bin/python3):
    python3 interpreter/freeze.py OCIRUN_PACKAGE_DIR CPYTHON_TREE

- copies the package's .py files to TREE/Lib/ocirun;
- finds the standard library's pure-Python modules that importing every ocirun module
  loads (json, subprocess, the encodings used at start, ...);
- writes TREE/Tools/scripts/freeze_modules.py from its pristine copy with one more
  section of frozen modules, ocirun's package tree and those modules, and runs it: it
  regenerates the Makefile's rules, Python/frozen.c and the deep-freeze list, so that
  `make` compiles every one of them into static code objects in the binary.
Files are rewritten only when their content changes (make rebuilds what changed).
"""
import filecmp
import os
import shutil
import subprocess
import sys

SECTION = "ocirun (interpreter/freeze.py)"
# Written into the tree's copy of the package (and frozen with it): the names of the
# modules frozen here, for ocirun.boot.FrozenFinder.
INDEX = "_frozen.py"
# Always frozen: the codecs a start may need for the standard streams and file names.
ENCODINGS = ["encodings", "encodings.aliases", "encodings.utf_8", "encodings.ascii",
             "encodings.latin_1"]

# Run in a separate interpreter: imports every module of the package and prints the
# standard library modules (written in Python) that ended up loaded.
PROBE = r"""
import os, sys, sysconfig
sys.path.insert(0, sys.argv[1])
stdlib = sysconfig.get_path("stdlib") + "/"
for top, dirs, files in os.walk(sys.argv[1] + "/ocirun"):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for fn in sorted(files):
        if fn.endswith(".py") and fn != "__main__.py":
            rel = os.path.relpath(os.path.join(top, fn), sys.argv[1])[:-3]
            name = rel.replace("/", ".").removesuffix(".__init__")
            try:
                __import__(name)
            except BaseException:  # a script, or a module that needs what is absent
                pass
for name, mod in sorted(sys.modules.items()):
    f = getattr(mod, "__file__", None) or ""
    if (f.startswith(stdlib) and f.endswith(".py") and "-packages/" not in f
            and not name.startswith("ocirun")):
        print(name, int(hasattr(mod, "__path__")))
"""


def copy_package(src, dst):
    """src's .py files into dst, removing what src no longer has."""
    wanted = set()
    for top, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for fn in files:
            if fn.endswith(".py"):
                rel = os.path.relpath(os.path.join(top, fn), src)
                wanted.add(rel)
                target = os.path.join(dst, rel)
                if not os.path.exists(target) or not filecmp.cmp(os.path.join(top, fn), target,
                                                                  shallow=False):
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    # copied with a new mtime (not copy2): make remakes a frozen module
                    # when its source is newer than the output, and a checkout's files
                    # may be older than the last build's outputs
                    shutil.copyfile(os.path.join(top, fn), target)
    for top, dirs, files in os.walk(dst):
        for fn in files:
            rel = os.path.relpath(os.path.join(top, fn), dst)
            if rel not in wanted and rel != INDEX:
                os.unlink(os.path.join(top, fn))


def stdlib_modules(pkg_parent):
    out = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, pkg_parent], check=True,
                         capture_output=True, text=True).stdout
    return [(name, ispkg == "1") for name, ispkg in (line.split() for line in out.splitlines())]


def write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# deepfreeze.c's own helper (see fix_deepfreeze)
INTERN_NAMES = """
/* a code object's names (of attributes and globals), interned as unmarshalling does */
static void
intern_names(PyCodeObject *co)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(co->co_names); i++) {
        PyObject **item = &_PyTuple_ITEMS(co->co_names)[i];
        if (PyUnicode_CheckExact(*item)) {
            PyUnicode_InternInPlace(item);
        }
    }
}
"""


def fix_deepfreeze(script):
    """Two changes to 3.11.2's deepfreeze.py, which writes the frozen modules' code
    objects as static C data:
    - it shares the interpreter's global strings with the frozen constants equal to
      them, but reads those strings from C source without undoing its escapes: a
      constant backslash-n becomes the global newline. None of CPython's own frozen
      modules has such a constant; re._parser has. The global strings that have a
      backslash in their C spelling are left out.
    - every start interns the strings of every frozen code object (_Py_Deepfreeze_Init:
      names, constants, local variable names), and every finalization resets every
      static string (_Py_Deepfreeze_Fini): ~3,700 code objects once ocirun's modules are
      in, ~1,000 more page faults per start (774 code objects for CPython's own frozen
      modules, most of which a start does not import). Instead, a module's code objects
      have their names (co_names: attributes and globals, which type look-ups cache
      only when interned) interned when its code is first taken (its
      _Py_get_*_toplevel), and the reset is done only for the modules that were taken.
      Constants and local names stay as they are: deepfreeze writes each distinct
      string once, so equal names are already the same object; interning them only
      dirtied their pages (~40 page faults and ~0.2 ms on `state`).
      (Interned or not, look-ups find the same objects.)"""
    pristine = script + ".orig"
    if not os.path.exists(pristine):
        shutil.copy2(script, pristine)
    with open(pristine) as f:
        source = f.read()
    edits = [
        ("identifiers, strings = get_identifiers_and_strings()\n",
         "identifiers, strings = get_identifiers_and_strings()\n"
         "strings = {s: n for s, n in strings.items() if '\\\\' not in s}\n"),
        ("""        module = module.replace(".", "_")
        self.generate(f"{module}_toplevel", code)
        with self.block(f"static void {module}_do_patchups(void)"):
            for p in self.patchups:
                self.write(p)
""", """        first, first_dealloc = len(self.interns), len(self.deallocs)
        module = module.replace(".", "_")
        self.generate(f"{module}_toplevel", code)
        interns, deallocs = self.interns[first:], self.deallocs[first_dealloc:]
        del self.interns[first:], self.deallocs[first_dealloc:]
        self.write(f"static int {module}_loaded;")
        if deallocs:
            self.lazy_deallocs.append((module, deallocs))
        with self.block(f"static void {module}_do_patchups(void)"):
            for p in self.patchups:
                self.write(p)
            with self.block(f"if (!{module}_loaded)"):
                self.write(f"{module}_loaded = 1;")
                for p in interns:
                    self.write(p.replace("_PyStaticCode_InternStrings", "intern_names") + ";")
"""),
        ("""        self.interns: list[str] = []
""", """        self.interns: list[str] = []
        self.lazy_deallocs: list[tuple[str, list[str]]] = []
"""),
        ("""        self.write('#include "internal/pycore_long.h"')
""", """        self.write('#include "internal/pycore_long.h"')
        self.write(INTERN_NAMES)
"""),
        ("def make_string_literal(", "INTERN_NAMES = " + repr(INTERN_NAMES) + "\n\n\ndef make_string_literal("),
        ("""        for p in printer.deallocs:
            printer.write(p)
""", """        for p in printer.deallocs:
            printer.write(p)
        for module, deallocs in printer.lazy_deallocs:
            with printer.block(f"if ({module}_loaded)"):
                for p in deallocs:
                    printer.write(p)
"""),
    ]
    for old, new in edits:
        if source.count(old) != 1:
            sys.exit(f"freeze.py: {script}: not the deepfreeze.py expected")
        source = source.replace(old, new)
    write_if_changed(script, source)


def fix_freeze_module(script):
    """ocirun's modules compiled as install.sh's bundle has them (scripts/build-bundle.py):
    optimize=2, no docstrings or asserts (nothing reads them at run time). With the
    column tables left out (build.sh runs the freezing with -X no_debug_ranges), their
    static code is about a third smaller, and so are the pages a start touches."""
    pristine = script + ".orig"
    if not os.path.exists(pristine):
        shutil.copy2(script, pristine)
    with open(pristine) as f:
        source = f.read()
    old = 'code = compile(text, filename, "exec", optimize=0, dont_inherit=True)'
    if source.count(old) != 1:
        sys.exit(f"freeze.py: {script}: not the _freeze_module.py expected")
    write_if_changed(script, source.replace(old, old.replace(
        "optimize=0", 'optimize=2 if name.startswith("ocirun") else 0')))


def main(pkg, tree):
    pkg = os.path.abspath(pkg)
    copy_package(pkg, os.path.join(tree, "Lib", "ocirun"))
    script = os.path.join(tree, "Tools", "scripts", "freeze_modules.py")
    pristine = script + ".orig"
    if not os.path.exists(pristine):
        shutil.copy2(script, pristine)
    with open(pristine) as f:
        source = f.read()
    # the modules CPython freezes already must not be listed twice
    sys.path.insert(0, os.path.dirname(script))
    import importlib.machinery
    orig = importlib.machinery.SourceFileLoader("_freeze_modules_orig", pristine).load_module()
    known = {m.name for m in orig.parse_frozen_specs()}
    entries = ["<ocirun.**.*>"]
    names = {name: False for name in ENCODINGS}
    names["encodings"] = True
    names.update(stdlib_modules(os.path.dirname(pkg)))
    lib = os.path.join(tree, "Lib")
    for name, ispkg in sorted(names.items()):
        rel = os.path.join(lib, *name.split("."))
        # (not Debian's own additions, such as _sysconfigdata__*)
        there = os.path.isfile(rel + "/__init__.py" if ispkg else rel + ".py")
        if name not in known and there:
            entries.append(f"<{name}>" if ispkg else name)
    frozen = {}
    for top, dirs, files in os.walk(pkg):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for fn in files:
            if fn.endswith(".py"):
                rel = os.path.relpath(os.path.join(top, fn), os.path.dirname(pkg))[:-3]
                ispkg = fn == "__init__.py"
                frozen[rel.removesuffix("/__init__").replace("/", ".")] = ispkg
    frozen["ocirun._frozen"] = False
    for e in entries[1:]:
        frozen[e.strip("<>")] = e.startswith("<")
    write_if_changed(os.path.join(lib, "ocirun", INDEX),
                     '"""Written by interpreter/freeze.py: {module: is a package} of the '
                     'modules frozen into this interpreter by ocirun\'s build."""\n'
                     f"FROZEN = {dict(sorted(frozen.items()))!r}\n")
    anchor = "    (TESTS_SECTION, ["
    if source.count(anchor) != 1:
        sys.exit(f"freeze.py: {script}: the FROZEN list is not as expected")
    section = f"    ({SECTION!r}, [\n" + "".join(f"        {e!r},\n" for e in entries) + "        ]),\n"
    write_if_changed(script, source.replace(anchor, section + anchor))
    fix_deepfreeze(os.path.join(tree, "Tools", "scripts", "deepfreeze.py"))
    fix_freeze_module(os.path.join(tree, "Programs", "_freeze_module.py"))
    # freeze_modules.py rewrites only the generated files whose content changes
    subprocess.run([sys.executable, script], check=True, cwd=tree)
    print(f"freeze.py: ocirun's package and {len(entries) - 1} standard library modules "
          f"listed for freezing")


if __name__ == "__main__":
    main(*sys.argv[1:])
