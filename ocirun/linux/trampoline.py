"""The last execve goes through a sealed memfd (CVE-2019-5736).

Until its execve, the container's process runs the host's Python interpreter, and an
image can name `/proc/self/exe` as its entrypoint or script interpreter: the kernel
would then run (and expose for writing, once we exit) the host's interpreter. So the
process first becomes a 38-byte program held in a sealed memfd, which execs the real
entrypoint; at that execve /proc/self/exe is the memfd, which cannot be written.

The program (x86_64), entered with argv = ["ocirun-exec", path, arg0, arg1, ...]; it
refuses anything else (a script naming it as interpreter gets argv[0] from the kernel):
    mov  rax, [rsp]              ; argc
    cmp  rax, 3
    jb   fail
    mov  rbx, [rsp+8]            ; argv[0] must start with "ocirun-e"
    mov  rcx, [rbx]
    mov  rbx, "ocirun-e"
    cmp  rcx, rbx
    jne  fail
    mov  rdi, [rsp+16]           ; argv[1]: path
    lea  rsi, [rsp+24]           ; &argv[2]: the real argv
    lea  rdx, [rsp+rax*8+16]     ; envp
    mov  eax, 59                 ; execve(path, argv, envp)
    syscall
fail:
    mov  edi, 127                ; exit_group(127)
    mov  eax, 231
    syscall

Where a seccomp profile refuses execveat(2), the call that starts that program, the
runtime never falls back to execve(2) of /proc/self/fd/N: that path would be looked
up in the container's /proc, which the image, a volume or a CAP_SYS_ADMIN process can
make into anything (docs/security.md M). With noNewPrivileges the program loads the filter
itself, after its execveat (the waiter below, with no fifo to wait on); without it the
filter must be loaded while the runtime still has CAP_SYS_ADMIN, before that execveat,
so create and exec refuse such a profile (check_profile).

The waiter (waiter() below) is the same kind of program for a created container whose
init shared the runtime's memory (create.py _waiter): that init cannot wait for `start`
in Python, since the runtime is suspended until its execve. It sets itself up entirely
(privileges; without noNewPrivileges the seccomp filter, as before), then becomes the
waiter, which makes itself non-dumpable, catches the signals `kill` may send (as pid 1
it would ignore them) to exit 128+n (and exits 127 where it cannot: without
noNewPrivileges the container's filter is already in force), then unblocks signals
(the init execs it with all of them blocked, so none sent meanwhile is lost), reads
`start`'s byte from the exec fifo, closes
it, loads the noNewPrivileges filter if it carries one (right before the execve, as
the init would have: docs/security.md J) and execs the entrypoint with the trampoline's
argv. Its source is waiter.S; its data (fifo fd, seccomp flags, struct sock_fprog)
follows the code, and the filter follows that.
"""
import posix
import _struct  # the C module: `struct` is a .py file to find and load

_CODE = {
    "x86_64": bytes.fromhex(
        "488b0424" "4883f803" "722d" "488b5c2408" "488b0b" "48bb") + b"ocirun-e" + bytes.fromhex(
        "4839d9" "7516" "488b7c2410" "488d742418" "488d54c410" "b83b000000" "0f05"
        "bf7f000000" "b8e7000000" "0f05"),
}
# waiter.S assembled (tests/unit/test_waiter.py checks); data at _WAITER_DATA: fifo fd
# (u32), 4 bytes, seccomp flags (u64), struct sock_fprog (u16 length, 6 bytes, u64 address).
_WAITER = {
    "x86_64": bytes.fromhex(
        "bf0400000031f6b89d0000000f054885c00f85090100004889e3488b034883f8030f82f9000000488b4b"
        "08488b0948ba6f636972756e2d654839d10f85df0000004883ec20488d05e70000004889042448c74424"
        "0800000004488944241048c7442418000000004c8d25d2000000410fb63c2485ff74204889e631d241ba"
        "08000000b80d0000000f054885c00f858e00000049ffc4ebd7bf02000000488d74241831d241ba080000"
        "00b80e0000000f054885c0756b8b3d8d00000083ffff741f4889e6ba0100000031c00f054883f8017555"
        "8b3d70000000b8030000000f050fb7057200000085c0741fbf01000000488b355a000000488d155b0000"
        "00b83d0100000f054885c07517488b7b10488d7318488b03488d54c310b83b0000000f05bf7f000000eb"
        "05bf01000000b8e70000000f0581c780000000b8e70000000f050102030f0a0c0e00" + "00" * 32),
}
_WAITER_DATA = 0x148
_MACHINE = {"x86_64": 0x3E}
_BASE = 0x400000
MFD_CLOEXEC = 1
MFD_ALLOW_SEALING = 2
MFD_EXEC = 0x10
F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8


def elf(machine, code=None):
    """A static ELF64 executable: header, one PT_LOAD segment, the code (the
    trampoline's unless given), loaded at _BASE, entered at _BASE + 120."""
    code = _CODE[machine] if code is None else code
    size = 64 + 56 + len(code)
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    ehdr = _struct.pack("<16sHHIQQQIHHHHHH", ident, 2, _MACHINE[machine], 1, _BASE + 120,
                       64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = _struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return ehdr + phdr + code


_PROGRAM = elf(posix.uname().machine) if posix.uname().machine in _CODE else None


def waiter_supported():
    return _PROGRAM is not None and posix.uname().machine in _WAITER


def waiter(fifo_fd, seccomp=None):
    """The waiter program (see the docstring) for this container: an ELF that waits
    for a byte on `fifo_fd` (-1: does not wait), then loads `seccomp` (a Prepared
    program, or None), then execs as the trampoline does."""
    machine = posix.uname().machine
    code = bytearray(_WAITER[machine])
    prog = b"" if seccomp is None else seccomp.prog
    _struct.pack_into("<IxxxxQH6xQ", code, _WAITER_DATA, fifo_fd & 0xFFFFFFFF,
                      0 if seccomp is None else seccomp.flags, len(prog) // 8,
                      _BASE + 120 + len(code) if prog else 0)
    return elf(machine, bytes(code) + prog)


def loads_filter(ctx):
    """Whether the process's exec program loads its seccomp filter itself: where the
    profile refuses the execveat that starts the program (check_profile allows that
    only with noNewPrivileges)."""
    return ctx.seccomp is not None and ctx.seccomp.refuses_execveat


def check_profile(prepared, nnp, field="linux.seccomp"):
    """Before anything is set up: a profile that refuses execveat(2) can be honoured
    only by the exec program loading it (noNewPrivileges, no listener to send)."""
    if not prepared.refuses_execveat:
        return
    if not waiter_supported():
        raise_refusal(field, "this machine has no exec program to load it")
    if not nnp:
        raise_refusal(field, "without process.noNewPrivileges the filter must be loaded "
                             "before that execveat")
    if prepared.notify:
        raise_refusal(field, "the exec program cannot hand over a seccomp listener")


def raise_refusal(field, why):
    from ocirun.errors import ConfigError
    raise ConfigError(field, "refuses execveat(2), which starts the container's process "
                             f"from a sealed copy of its exec program (CVE-2019-5736); {why}: "
                             "allow execveat")


def program_for(k, ctx):
    """The sealed exec program for the child's process: the trampoline, or the waiter
    with no fifo carrying the filter (loads_filter)."""
    if loads_filter(ctx):
        return prepare(k, waiter(-1, ctx.seccomp))
    return prepare(k)


def prepare(k, program=None):
    """A sealed, executable memfd holding the program (the trampoline unless given;
    None where this machine has no program). Call before seccomp is loaded: the
    profile may not allow memfd_create. Raises OSError where the memfd cannot be made:
    the process is never exec'd without it (fail closed)."""
    if program is None:
        program = _PROGRAM
    if program is None:
        return None
    try:
        fd = k.memfd_create("ocirun-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC)
    except OSError:  # kernels before 6.3 have no MFD_EXEC
        fd = k.memfd_create("ocirun-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING)
    try:
        view = memoryview(program)
        while view:
            view = view[k.write(fd, view):]
        k.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
    except BaseException:
        k.close(fd)
        raise
    return fd


def request(memfd, path, args, env, errfd, keep_mask=False):
    """The execve to make, as a tuple the C side of clone_vm can perform (_sys.c
    vm_exec) and execve() below does: (memfd or -1, path, argv, envp, errfd, error
    line), all bytes. `env` holds "K=V" strings; a later one replaces an earlier one
    with the same name. The error line is the channel message that precedes
    strerror(errno) when the execve fails. keep_mask (the waiter): the execve keeps
    every signal blocked, for the program to unblock (clone_vm's C side only)."""
    d = {}
    for e in env:
        k, _, v = e.partition("=")
        d[k] = v
    envp = tuple(f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in d.items())
    argv = tuple(a.encode("utf-8", "surrogateescape") for a in args)
    path_b = path.encode("utf-8", "surrogateescape")
    if memfd is not None:
        argv = (b"ocirun-exec", path_b) + argv
    for item in (path_b,) + argv + envp:
        if b"\0" in item:
            raise ValueError(f"embedded null byte in `{item[:40].decode('utf-8', 'replace')}`")
    errline = f"ERROR exec `{args[0]}`: ".replace("\n", " ").encode("utf-8", "replace")
    req = (-1 if memfd is None else memfd, path_b, argv, envp, errfd, errline)
    return req + (True,) if keep_mask else req


def execve(k, req):
    """Perform a request(): through the memfd program with execveat(2). Never
    directly, nor through /proc/self/fd/N (see the module docstring): a direct execve
    would let `/proc/self/exe` name the host's interpreter again. Only on a machine
    with no program (no memfd: -1) is the exec direct. Raises OSError."""
    memfd, path, argv, envp = req[:4]
    env = dict(e.partition(b"=")[::2] for e in envp)
    k.execve(path if memfd < 0 else memfd, argv, env)
