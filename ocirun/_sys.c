/* ocirun._sys: syscall(2) for Python without ctypes (whose import costs more than
 * the rest of `ocirun run`'s imports together). Optional: ocirun/kernel.py falls
 * back to ctypes when this module is not built.
 *
 *   syscall(nr, *args) -> int     args: int, None (NULL), or a buffer (its address)
 *   address(buffer) -> int        the address of a buffer's bytes (keep it alive)
 *   fork_into_cgroup(fd) -> int   os.fork(), born in the cgroup v2 directory fd
 *   clone_vm(fn, cgroup_fd, errfd) -> int
 *                                 a child sharing our memory runs fn() to its execve
 *   netns_ahead(), netns_take() -> fd
 *                                 a network namespace made by a helper meanwhile
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
/* clone_vm: x86_64 (its entry is written in asm) with glibc, and CPython before 3.14,
 * whose recursion checks compare the C stack pointer with the thread's own stack and
 * would refuse the child's. */
#if defined(__x86_64__) && defined(__GLIBC__) && PY_VERSION_HEX < 0x030E0000
#include <sys/single_threaded.h>
#define OCI_HAVE_CLONE_VM 1
#endif

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

#ifdef OCI_HAVE_CLONE_VM
/* clone_vm(fn, cgroup_fd, errfd): the container init without copying the runtime.
 *
 * fork() copies the page tables of the runtime's ~10 MB heap, and then every page
 * either process writes (CPython writes a refcount whenever it touches an object) is
 * copied on a fault: ~800 faults and 1.7-2.4 ms per container measured here, close to
 * half of what a warm `run` costs. Instead the child is made with CLONE_VM | CLONE_VFORK:
 * it runs in our memory, on a stack of its own, while we stay suspended in clone3
 * until it has exec'd or exited, like vfork(2). It is our one thread continuing
 * elsewhere: same interpreter, same thread state, the GIL ours.
 *
 * The rules that make that sound (linux/init.py child_prepare keeps the Python side):
 * - fn() returns before the execve: every frame it pushed is popped, so nothing is
 *   left pointing into memory we reuse. It returns an exit code, or the exec request
 *   (fd, path, argv, envp, errfd, errline) that vm_exec below performs in C.
 * - fn() changes no object we use afterwards (no Python-level signal handlers,
 *   no shared state); what the kernel keeps per process (fds, cwd, root,
 *   namespaces, credentials, signal dispositions) is the child's own, since only the
 *   memory is shared.
 * - Only a process with a single thread may do this: another thread would run in
 *   the same memory while the child does (clone_vm raises EBUSY).
 * - The child makes the memory non-dumpable (PR_SET_DUMPABLE, and its setresuid):
 *   a property of the memory, so we restore ours when it is done. (Likewise
 *   oom_score_adj is shared by every process of a memory: create.py does not use
 *   this for a container that sets one.)
 * - No garbage collection while the child runs: a collection there would run the
 *   finalizers of our objects in the child's process.
 * - Every signal blocked while the child runs Python: a handler of ours (the
 *   interpreter's, or one the caller installed) must not run in the child, and a
 *   signal must not kill it halfway through changing an object. vm_exec empties the
 *   mask right before the execve, when only C runs: a signal pending then is the new
 *   program's, or kills the child at a point where our memory is consistent (`create`'s
 *   waiter is exec'd with the mask kept, and empties it itself). Only
 *   SIGKILL can stop the child in its Python part; if that happens while it has
 *   released the GIL in a blocking call (most of its time), we take the GIL back (see
 *   sys_clone_vm); if it happens while it runs bytecode, an object it was changing
 *   may be left half-changed, which the runtime cannot detect.
 * - Failures of our own (not the container's) are reported as one ERROR line on
 *   `errfd`, the channel to the runtime, like the init's.
 * After it: our thread state as it was, the request's objects released. */
static PyObject *vm_fn, *vm_result;
static char **vm_vec;
static char *vm_stack;
static int vm_errfd = -1;
#define VM_STACK_SIZE (1 << 20)

static void vm_exit(int code)
{
    syscall(SYS_exit_group, code);
    /* A seccomp profile that refuses exit_group (SCMP_ACT_ERRNO as the default, with
     * the filter on before the capabilities go) makes it return: die of SIGILL, which
     * needs no syscall, rather than spin while the runtime waits for us. */
    __builtin_trap();
}

static void vm_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* A failure of ours, not the container's: one line for the runtime, then exit. */
static void vm_fail(const char *what)
{
    vm_write_all(vm_errfd, "ERROR container init: ", 22);
    vm_write_all(vm_errfd, what, strlen(what));
    vm_write_all(vm_errfd, "\n", 1);
    vm_exit(1);
}

/* The execve of an exec request, or exit with the error line on the channel. */
static void vm_exec(PyObject *req)
{
    PyObject *argv_t, *envp_t, *errline;
    Py_ssize_t argc, envc, i;
    long fd, errfd;
    const char *path, *err;
    sigset_t none;
    int e, keep_mask;

    if (!PyTuple_Check(req) || (PyTuple_GET_SIZE(req) != 6 && PyTuple_GET_SIZE(req) != 7))
        vm_fail("malformed exec request");
    /* a 7th item, true: the program unblocks signals itself (the waiter of `create`,
     * linux/trampoline.py), so that one sent before its handlers are in place waits */
    keep_mask = PyTuple_GET_SIZE(req) == 7 && PyTuple_GET_ITEM(req, 6) == Py_True;
    fd = PyLong_AsLong(PyTuple_GET_ITEM(req, 0));
    path = PyBytes_AsString(PyTuple_GET_ITEM(req, 1));
    argv_t = PyTuple_GET_ITEM(req, 2);
    envp_t = PyTuple_GET_ITEM(req, 3);
    errfd = PyLong_AsLong(PyTuple_GET_ITEM(req, 4));
    errline = PyTuple_GET_ITEM(req, 5);
    if (PyErr_Occurred() || path == NULL || !PyTuple_Check(argv_t) || !PyTuple_Check(envp_t)
        || !PyBytes_Check(errline))
        vm_fail("malformed exec request");
    argc = PyTuple_GET_SIZE(argv_t);
    envc = PyTuple_GET_SIZE(envp_t);
    /* freed by the parent (clone_vm), which we leave at our execve */
    vm_vec = malloc(sizeof(char *) * (size_t)(argc + envc + 2));
    if (vm_vec == NULL)
        vm_fail("out of memory");
    for (i = 0; i < argc; i++)
        if ((vm_vec[i] = PyBytes_AsString(PyTuple_GET_ITEM(argv_t, i))) == NULL)
            vm_fail("malformed exec request");
    vm_vec[argc] = NULL;
    for (i = 0; i < envc; i++)
        if ((vm_vec[argc + 1 + i] = PyBytes_AsString(PyTuple_GET_ITEM(envp_t, i))) == NULL)
            vm_fail("malformed exec request");
    vm_vec[argc + 1 + envc] = NULL;
    /* The new program starts with no signal blocked (linux/init.py _finalize does this
     * on the fork path); from here on only C runs until the execve. (After the seccomp
     * filter: a profile that refuses rt_sigprocmask is reported, not obeyed halfway.) */
    sigemptyset(&none);
    if (!keep_mask && sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        vm_fail("cannot unblock signals before execve (does the seccomp profile refuse "
                "rt_sigprocmask?)");
    if (fd >= 0)
        /* linux/trampoline.py: execveat(2) of the sealed program, never a path in the
         * container's /proc (a profile that refuses execveat was refused at create) */
        syscall(SYS_execveat, (int)fd, "", vm_vec, vm_vec + argc + 1, AT_EMPTY_PATH);
    else
        syscall(SYS_execve, path, vm_vec, vm_vec + argc + 1);
    e = errno;
    vm_write_all((int)errfd, PyBytes_AS_STRING(errline), (size_t)PyBytes_GET_SIZE(errline));
    err = strerror(e);
    vm_write_all((int)errfd, err, strlen(err));
    vm_write_all((int)errfd, "\n", 1);
    vm_exit(1);
}

static int vm_child(void)
{
    PyObject *r = PyObject_CallNoArgs(vm_fn);

    if (r == NULL)    /* fn reports its own errors: this is a bug, not a user error */
        vm_fail("internal error before execve");
    vm_result = r;
    if (PyLong_Check(r))
        vm_exit((int)PyLong_AsLong(r));
    vm_exec(r);
    return 1;
}

/* clone3 on a stack of its own: the child cannot return through the C frames it
 * shares with us, so it starts in `entry` (as glibc's clone() does with fn) and exits
 * with what it returns. */
static long oci_clone3(struct oci_clone_args *a, int (*entry)(void))
{
    long ret;
    register int (*fn)(void) __asm__("r12") = entry;

    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xor %%ebp, %%ebp\n\t"   /* child: a fresh stack, no frame to return to */
        "call *%%r12\n\t"
        "mov %%eax, %%edi\n\t"
        "mov $231, %%eax\n\t"    /* exit_group */
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "=a"(ret)
        : "0"((long)SYS_clone3), "D"(a), "S"(sizeof(*a)), "r"(fn)
        : "rcx", "r11", "memory");
    return ret;
}

/* netns_ahead() / netns_take(): a new network namespace made on another CPU while we
 * go on.
 *
 * unshare(CLONE_NEWNET) is the costliest namespace to create (~0.5 ms measured here:
 * the kernel sets up a loopback device, sysctls and per-namespace tables), and the
 * init used to pay it on the path to the container's execve. A helper process made
 * with CLONE_VM | CLONE_FILES (our memory and our fd table, nothing else) creates the
 * namespace and opens it; the runtime meanwhile validates the config, plans and
 * prepares seccomp, the cgroup and the state directory, then takes the fd, and the
 * init joins it with setns(2), which costs microseconds. The namespace is the one
 * unshare would have made: created with our credentials in our user namespace
 * (create.py only asks for it then).
 *
 * The helper runs while we run Python, in the same memory, so it touches nothing but
 * its own stack and na_fd / na_err: raw syscalls only (glibc's wrappers write errno,
 * which is our thread's), every signal blocked (it inherits a full mask: no handler
 * of ours runs on its stack), exit_signal 0 (no SIGCHLD for our handlers or for
 * `run`'s wait). netns_take reaps it (__WALL) and returns the fd. clone_vm refuses
 * (EBUSY) while a helper has not been taken: the two must not share the memory at
 * once. */
static volatile int na_fd = -1, na_err;
static long na_pid;     /* the pending helper, 0 if none */
static pid_t na_owner;  /* the process that started it: a child forked meanwhile has
                         * a copy of na_pid but no such child (fork does not copy it) */

/* The pending helper's pid, or 0; forgets one inherited through fork. */
static long na_pending(void)
{
    if (na_pid != 0 && na_owner != getpid())
        na_pid = 0;
    return na_pid;
}
static char na_stack[16384] __attribute__((aligned(16)));

static inline long na_raw(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static int na_child(void)
{
    static const char path[] = "/proc/self/ns/net";
    long r = na_raw(SYS_unshare, CLONE_NEWNET, 0, 0);

    if (r == 0)
        r = na_raw(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC);
    if (r < 0)
        na_err = (int)-r;
    else
        na_fd = (int)r;
    return 0;
}

static PyObject *
sys_netns_ahead(PyObject *self, PyObject *unused)
{
    struct oci_clone_args a;
    sigset_t all, old;
    long pid;

    if (na_pending() != 0 || vm_fn != NULL) {
        errno = EBUSY;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    na_fd = -1;
    na_err = 0;
    memset(&a, 0, sizeof(a));
    a.flags = CLONE_VM | CLONE_FILES;
    a.exit_signal = 0;
    a.stack = (uint64_t)(uintptr_t)na_stack;
    a.stack_size = sizeof(na_stack);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = oci_clone3(&a, na_child);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        errno = (int)-pid;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    na_pid = pid;
    na_owner = getpid();
    /* Another CPU than ours, where there is one: placed on ours, as the scheduler
     * often places a new process, the helper would only run once we block in
     * netns_take, and nothing would overlap (measured: it then waits the whole
     * ~0.7 ms). Best effort: a failure leaves it where it is. */
    {
        cpu_set_t cpus;
        int cpu = sched_getcpu();

        if (cpu >= 0 && sched_getaffinity(0, sizeof(cpus), &cpus) == 0) {
            CPU_CLR(cpu, &cpus);
            if (CPU_COUNT(&cpus) > 0)
                sched_setaffinity((pid_t)pid, sizeof(cpus), &cpus);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
sys_netns_take(PyObject *self, PyObject *unused)
{
    int status;
    long r;

    if (na_pending() == 0) {
        errno = ECHILD;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_BEGIN_ALLOW_THREADS
    do
        r = waitpid((pid_t)na_pid, &status, __WALL);
    while (r < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    na_pid = 0;
    if (na_fd < 0) {
        errno = na_err ? na_err : EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(na_fd);
}

static PyObject *
sys_clone_vm(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    struct oci_clone_args a;
    PyThreadState *ts, saved;
    sigset_t all, old;
    long fd, errfd, pid;
    int dumpable, gc_was_on;

    if (nargs != 3 || !PyCallable_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "clone_vm(fn, cgroup_fd, errfd)");
        return NULL;
    }
    fd = PyLong_AsLong(args[1]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    errfd = PyLong_AsLong(args[2]);
    if (errfd == -1 && PyErr_Occurred())
        return NULL;
    if (!__libc_single_threaded || vm_fn != NULL || na_pending() != 0) {
        errno = EBUSY;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (vm_stack == NULL) {
        char *p = mmap(NULL, VM_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (p == MAP_FAILED)
            return PyErr_SetFromErrno(PyExc_OSError);
        /* a guard page: an overflow faults instead of writing into the heap */
        if (mprotect(p, 4096, PROT_NONE) < 0) {
            munmap(p, VM_STACK_SIZE);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        vm_stack = p;
    }
    memset(&a, 0, sizeof(a));
    a.flags = CLONE_VM | CLONE_VFORK | (fd >= 0 ? OCI_CLONE_INTO_CGROUP : 0);
    a.exit_signal = SIGCHLD;
    a.stack = (uint64_t)(uintptr_t)vm_stack;
    a.stack_size = VM_STACK_SIZE;
    a.cgroup = fd >= 0 ? (uint64_t)fd : 0;
    dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    gc_was_on = PyGC_Disable();
    ts = PyThreadState_Get();
    saved = *ts;
    vm_fn = args[0];
    vm_errfd = (int)errfd;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = oci_clone3(&a, vm_child);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* The child has exec'd or exited: its frames are gone (fn returned) or were
     * abandoned by an _exit inside fn; either way our thread state is ours again.
     * SIGKILLed while it had released the GIL in a blocking call, it leaves the GIL
     * free and no current thread state: take them back. */
    if (_PyThreadState_UncheckedGet() == NULL)
        PyEval_RestoreThread(ts);
    *ts = saved;
    vm_fn = NULL;
    vm_errfd = -1;
    Py_CLEAR(vm_result);
    free(vm_vec);
    vm_vec = NULL;
    if (dumpable == 0 || dumpable == 1)  /* (2, root-only dumps, cannot be set back) */
        prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    if (gc_was_on)
        PyGC_Enable();
    if (pid < 0) {
        errno = (int)-pid;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}
#endif

static PyMethodDef methods[] = {
    {"syscall", (PyCFunction)(void (*)(void))sys_syscall, METH_FASTCALL, "syscall(nr, *args)"},
    {"address", sys_address, METH_O, "address(buffer)"},
    {"fork_into_cgroup", sys_fork_into_cgroup, METH_O, "fork_into_cgroup(fd) -> pid"},
#ifdef OCI_HAVE_CLONE_VM
    {"clone_vm", (PyCFunction)(void (*)(void))sys_clone_vm, METH_FASTCALL,
     "clone_vm(fn, cgroup_fd, errfd) -> pid"},
    {"netns_ahead", sys_netns_ahead, METH_NOARGS, "netns_ahead(): start making a netns"},
    {"netns_take", sys_netns_take, METH_NOARGS, "netns_take() -> fd of that netns"},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sys", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__sys(void)
{
    return PyModule_Create(&module);
}
