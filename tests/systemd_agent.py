"""Runs inside the systemd test machine as a service (tests/systemd_machine.py): it starts
the commands the tests send it, as a process of that machine (its pid, mount and cgroup
namespaces, a cgroup of its systemd), the way a login shell or an engine's daemon would
run them on a systemd host.

Protocol, over a unix stream socket (the path is argv[1]): the client sends one JSON line
{"argv", "env", "cwd", "timeout", "background"} with three fds (stdin, stdout, stderr) as
SCM_RIGHTS; the agent answers {"pid": N}, then {"status": waitpid status} (or
{"timeout": true} after killing the process group) unless "background" was asked for.
{"kill": PID, "signal": N} signals a background child of ours."""
import json
import os
import signal
import socket
import sys
import threading

children = set()
lock = threading.Lock()


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    with lock:
        children.discard(pid)


def _spawn(req, fds):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
            os.closerange(3, 65536)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            os.chdir(req.get("cwd") or "/")
            os.execvpe(req["argv"][0], req["argv"], req.get("env") or {})
        except BaseException as e:  # noqa: BLE001 (the child reports and goes)
            try:
                os.write(2, f"agent: exec {req['argv'][0]}: {e}\n".encode())
            finally:
                os._exit(127)
    return pid


def _serve(conn):
    with conn:
        msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        buf = msg
        while not buf.endswith(b"\n"):
            more = conn.recv(1 << 20)
            if not more:
                break
            buf += more
        req = json.loads(buf)
        if "kill" in req:
            with lock:
                ours = req["kill"] in children
            if ours:
                try:
                    os.kill(req["kill"], req.get("signal", signal.SIGKILL))
                except ProcessLookupError:
                    pass
            conn.sendall(json.dumps({"killed": ours}).encode() + b"\n")
            return
        try:
            pid = _spawn(req, fds)
        finally:
            for fd in fds:
                os.close(fd)
        with lock:
            children.add(pid)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        if req.get("background"):
            threading.Thread(target=_reap, args=(pid,), daemon=True).start()
            return
        done = threading.Event()
        result = {}

        def wait():
            try:
                result["status"] = os.waitpid(pid, 0)[1]
            except ChildProcessError:
                result["status"] = 0
            with lock:
                children.discard(pid)
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        if not done.wait(req.get("timeout") or 120):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            done.wait(10)
            conn.sendall(json.dumps({"timeout": True}).encode() + b"\n")
            return
        conn.sendall(json.dumps(result).encode() + b"\n")


def main():
    path = sys.argv[1]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
