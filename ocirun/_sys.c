/* ocirun._sys: syscall(2) for Python without ctypes (whose import costs more than
 * the rest of `ocirun run`'s imports together). Optional: ocirun/kernel.py falls
 * back to ctypes when this module is not built.
 *
 *   syscall(nr, *args) -> int     args: int, None (NULL), or a buffer (its address)
 *   address(buffer) -> int        the address of a buffer's bytes (keep it alive)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

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

static PyMethodDef methods[] = {
    {"syscall", (PyCFunction)(void (*)(void))sys_syscall, METH_FASTCALL, "syscall(nr, *args)"},
    {"address", sys_address, METH_O, "address(buffer)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sys", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__sys(void)
{
    return PyModule_Create(&module);
}
