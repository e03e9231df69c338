/* ocirun._sys: syscall(2) for Python without ctypes (whose import costs more than
 * the rest of `ocirun run`'s imports together). Optional: ocirun/kernel.py falls
 * back to ctypes when this module is not built.
 *
 *   syscall(nr, *args) -> int     args: int, None (NULL), or a buffer (its address)
 *   address(buffer) -> int        the address of a buffer's bytes (keep it alive)
 *   fork_into_cgroup(fd) -> int   os.fork(), born in the cgroup v2 directory fd
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <unistd.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define OCI_CLONE_INTO_CGROUP 0x200000000ULL

/* struct clone_args as of Linux 5.7 (CLONE_INTO_CGROUP); declared here so the build
 * does not depend on the kernel headers' age. */
struct oci_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

static PyObject *
sys_syscall(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long a[6] = {0, 0, 0, 0, 0, 0};
    Py_buffer views[6];
    int nviews = 0;
    long nr, ret;
    int err;
    Py_ssize_t i;

    if (nargs < 1 || nargs > 7) {
        PyErr_SetString(PyExc_TypeError, "syscall(nr, [up to 6 arguments])");
        return NULL;
    }
    nr = PyLong_AsLong(args[0]);
    if (nr == -1 && PyErr_Occurred())
        return NULL;
    for (i = 1; i < nargs; i++) {
        PyObject *o = args[i];
        if (o == Py_None) {
            a[i - 1] = 0;
        } else if (PyLong_Check(o)) {
            /* Masked: -100 (AT_FDCWD) and values above LONG_MAX both pass as bits. */
            a[i - 1] = (long)PyLong_AsUnsignedLongMask(o);
            if (PyErr_Occurred())
                goto fail;
        } else {
            if (PyObject_GetBuffer(o, &views[nviews], PyBUF_SIMPLE) < 0)
                goto fail;
            a[i - 1] = (long)views[nviews].buf;
            nviews++;
        }
    }
    ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    err = errno;
    while (nviews > 0)
        PyBuffer_Release(&views[--nviews]);
    if (ret == -1) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(ret);
fail:
    while (nviews > 0)
        PyBuffer_Release(&views[--nviews]);
    return NULL;
}

static PyObject *
sys_address(PyObject *self, PyObject *obj)
{
    Py_buffer view;
    void *p;

    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    p = view.buf;
    PyBuffer_Release(&view);
    return PyLong_FromVoidPtr(p);
}

/* os.fork() through clone3(CLONE_INTO_CGROUP): the child starts in the cgroup v2
 * directory `fd`. Moving a process there afterwards (a write to cgroup.procs) takes
 * the kernel's cgroup_threadgroup_rwsem for writing, which waits for an RCU grace
 * period: 5-20 ms on the machines measured, the largest single cost of a container
 * start on a cgroup host. The same interpreter bookkeeping as os.fork() around it.
 * Raises OSError (ENOSYS before Linux 5.3, EINVAL/E2BIG before 5.7): callers fall
 * back to os.fork() and a write. */
static PyObject *
sys_fork_into_cgroup(PyObject *self, PyObject *arg)
{
    struct oci_clone_args args;
    long fd = PyLong_AsLong(arg);
    long pid;
    int err;

    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "fork_into_cgroup: negative fd");
        return NULL;
    }
    memset(&args, 0, sizeof(args));
    args.flags = OCI_CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)fd;
    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &args, sizeof(args));
    err = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    if (pid == -1) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}

static PyMethodDef methods[] = {
    {"syscall", (PyCFunction)(void (*)(void))sys_syscall, METH_FASTCALL, "syscall(nr, *args)"},
    {"address", sys_address, METH_O, "address(buffer)"},
    {"fork_into_cgroup", sys_fork_into_cgroup, METH_O, "fork_into_cgroup(fd) -> pid"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sys", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__sys(void)
{
    return PyModule_Create(&module);
}
