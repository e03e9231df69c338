"""start: release a created container's init (one byte into its exec fifo), then the
poststart hooks once the user's program runs."""
import posix

from ocirun import fs
from ocirun.errors import StateError
from ocirun.lifecycle.state import mark, oci_state, status
from ocirun.state import FIFO, load

WAIT_EXEC_S = 2.0
POLL_S = 0.0005


def start(root, cid):
    st = load(root, cid)
    now = status(st)
    if now != "created":
        raise StateError(f"cannot start container `{cid}`: it is {now}, not created")
    mark("state load + status")
    relay = _notify_relay(st) if fs.getenv("NOTIFY_SOCKET") else None
    fifo = f"{st.dir}/{FIFO}"
    try:
        # Non-blocking: fails with ENXIO at once if no init holds the fifo.
        fd = posix.open(fifo, posix.O_WRONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    except OSError as e:
        if relay is not None:
            relay.close()
        raise StateError(f"cannot start container `{cid}`: {e.strerror}") from None
    try:
        posix.write(fd, b"0")
    finally:
        posix.close(fd)
    mark("exec fifo written (the init goes on)")
    # Nothing to write: "running" is the fifo gone (lifecycle/state.py status), and the
    # state file stays as create wrote it (0.2 ms less while the container's process,
    # woken, competes for the CPU).
    try:
        posix.unlink(fifo)
    except FileNotFoundError:
        pass
    mark("exec fifo removed")
    if (st.config_hooks or {}).get("poststart"):
        _wait_exec(st.pid)  # poststart runs after the user process is executed
        run_poststart(st)
        mark("poststart hooks")
    if relay is not None:
        from ocirun.lifecycle.notify import wait_ready
        wait_ready(relay, st)
    return st


def _notify_relay(st):
    """NOTIFY_SOCKET is set and the container was created with a socket of ours: listen
    there (before the init goes on, so that an early READY=1 is not lost)."""
    if not fs.isdir(f"{st.dir}/notify"):
        return None
    from ocirun.lifecycle import notify
    host = notify.host_socket()
    return notify.Relay(st.dir, host).bind() if host else None


def _wait_exec(pid, timeout=WAIT_EXEC_S):
    """Wait until `pid` no longer runs this program (the interpreter) nor the waiter
    (linux/trampoline.py, a memfd): it has exec'd the user's program (or died)."""
    import time
    me = posix.readlink("/proc/self/exe")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            exe = posix.readlink(f"/proc/{pid}/exe")
            if exe != me and not exe.startswith("/memfd:ocirun-exec"):
                return
        except OSError:
            return
        time.sleep(POLL_S)


def run_poststart(st):
    hooks = (st.config_hooks or {}).get("poststart")
    if hooks:
        from ocirun.hooks import run_hooks
        # The state of a started container, even if its process already exited: the
        # hook is about the start, and a fast process must not turn it into "stopped".
        run_hooks("poststart", hooks, oci_state(st, "running"), warn_only=True)
