/* The ocirun command as a program of its own: CPython's runtime linked in statically,
 * ocirun's modules (and the standard library modules it imports) frozen into the
 * binary as static code objects, the syscall extension built in. See
 * interpreter/build.sh and docs/interpreter.md.
 *
 * Installed as PREFIX/bin/ocirun, next to the package in PREFIX/lib/ocirun:
 *   PREFIX/lib/ocirun/python3          a symlink to this binary: run by that name (any
 *                                      name starting with "python") it is a plain
 *                                      python3, with its command line; sys.executable
 *   PREFIX/lib/ocirun/python/lib/python3.11
 *                                      the standard library's Python modules, for what
 *                                      is not frozen in
 *   PREFIX/lib/ocirun/launcher         the launcher over /usr/bin/python3 (install.sh)
 * As ocirun it starts as `python3 -I -S` would (no site, no user site, no Python
 * environment variables read, no current directory on sys.path, no bytecode written),
 * then runs ocirun.boot.frozen_main(). If the runtime cannot start or ocirun.boot is
 * not in the binary, or if OCIRUN_INTERPRETER=python3 is set, it executes the
 * launcher instead, with the same arguments.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

PyMODINIT_FUNC PyInit__sys(void);  /* ocirun/_sys.c */

static char lib[PATH_MAX];  /* PREFIX/lib/ocirun */

/* PREFIX/lib/ocirun from this binary's own path (PREFIX/bin/ocirun). */
static int find_lib(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');  /* .../bin/ocirun -> .../bin */
    if (!slash)
        return -1;
    *slash = 0;
    slash = strrchr(exe, '/');  /* .../bin -> PREFIX */
    if (!slash)
        return -1;
    *slash = 0;
    if (snprintf(lib, sizeof(lib), "%s/lib/ocirun", exe) >= (int)sizeof(lib))
        return -1;
    return 0;
}

/* The launcher over Debian's interpreter, with our arguments. Returns only on error. */
static int fall_back(char **argv, const char *why)
{
    char launcher[PATH_MAX + 16];
    snprintf(launcher, sizeof(launcher), "%s/launcher", lib);
    if (getenv("OCIRUN_INTERPRETER_DEBUG"))
        fprintf(stderr, "ocirun: built interpreter: %s; running %s\n", why, launcher);
    execv(launcher, argv);
    fprintf(stderr, "ocirun: %s, and %s: %s\n", why, launcher, strerror(errno));
    return 127;
}

static int set_paths(PyConfig *config)
{
    char buf[PATH_MAX + 32];
    wchar_t *w;
    PyStatus st;
    snprintf(buf, sizeof(buf), "%s/python3", lib);
    w = Py_DecodeLocale(buf, NULL);
    if (!w)
        return -1;
    st = PyConfig_SetString(config, &config->executable, w);
    PyMem_RawFree(w);
    if (PyStatus_Exception(st))
        return -1;
    snprintf(buf, sizeof(buf), "%s/python", lib);
    w = Py_DecodeLocale(buf, NULL);
    if (!w)
        return -1;
    st = PyConfig_SetString(config, &config->home, w);
    PyMem_RawFree(w);
    return PyStatus_Exception(st) ? -1 : 0;
}

static int python_main(int argc, char **argv)
{
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    if (set_paths(&config) < 0 || PyStatus_Exception(PyConfig_SetBytesArgv(&config, argc, argv)))
        return 1;
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);
    return Py_RunMain();
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    if (PyImport_AppendInittab("ocirun._sys", PyInit__sys) < 0)
        return 1;
    if (find_lib() < 0) {
        fprintf(stderr, "ocirun: cannot read /proc/self/exe\n");
        return 127;
    }
    if (strncmp(name, "python", 6) == 0)
        return python_main(argc, argv);
    const char *choice = getenv("OCIRUN_INTERPRETER");
    if (choice && strcmp(choice, "python3") == 0)
        return fall_back(argv, "OCIRUN_INTERPRETER=python3");

    /* python3 -I -S */
    PyPreConfig preconfig;
    PyPreConfig_InitPythonConfig(&preconfig);
    preconfig.isolated = 1;
    preconfig.use_environment = 0;
    PyStatus st = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(st))
        return fall_back(argv, "pre-initialization failed");
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.isolated = 1;
    config.use_environment = 0;
    config.user_site_directory = 0;
    config.safe_path = 1;
    config.site_import = 0;
    config.write_bytecode = 0;
    config.pathconfig_warnings = 0;
    config.use_frozen_modules = 1;
    config.parse_argv = 0;
    if (set_paths(&config) < 0 || PyStatus_Exception(PyConfig_SetBytesArgv(&config, argc, argv))) {
        PyConfig_Clear(&config);
        return fall_back(argv, "configuration failed");
    }
    st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        return fall_back(argv, st.err_msg ? st.err_msg : "initialization failed");
    PyObject *boot = PyImport_ImportModule("ocirun.boot");
    PyObject *run = boot ? PyObject_GetAttrString(boot, "frozen_main") : NULL;
    if (!run) {
        /* not this binary's modules: nothing of ocirun has run yet */
        PyErr_Clear();
        return fall_back(argv, "ocirun.boot.frozen_main is not frozen in");
    }
    PyObject *r = PyObject_CallNoArgs(run);  /* ends in posix._exit */
    if (!r) {
        PyErr_Print();  /* SystemExit: exits with its code */
        return 1;
    }
    Py_DECREF(r);
    return Py_FinalizeEx() < 0 ? 120 : 0;
}
