"""`run` with process.terminal and no console socket: relay the caller's terminal to
the container's pty (raw mode, window size changes forwarded) until it closes."""
import os
import select

import _signal


def relay(master, init_pid):
    from ocirun.linux.terminal import get_size, set_size
    stdin_tty = os.isatty(0)
    saved = None
    if stdin_tty:
        import termios
        saved = termios.tcgetattr(0)
        raw = termios.tcgetattr(0)
        # cfmakeraw: no echo, no line editing, no signal keys, 8-bit bytes
        raw[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                    | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        raw[1] &= ~termios.OPOST
        raw[2] &= ~(termios.CSIZE | termios.PARENB)
        raw[2] |= termios.CS8
        raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        termios.tcsetattr(0, termios.TCSANOW, raw)
        def winch(sig=None, frame=None):
            try:
                rows, cols = get_size(0)
                if rows and cols:  # a 0x0 caller (no real terminal) keeps consoleSize
                    set_size(master, rows, cols)
            except OSError:
                pass
        winch()
        _signal.signal(_signal.SIGWINCH, winch)
    try:
        p = select.poll()
        p.register(master, select.POLLIN)
        stdin_open = True
        p.register(0, select.POLLIN)
        while True:
            for fd, ev in p.poll():
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every holder of the pty peer has gone
                        data = b""
                    if not data:
                        return
                    _write_all(1, data)
                elif stdin_open:
                    data = os.read(0, 65536) if ev & (select.POLLIN | select.POLLHUP) else b""
                    if not data:
                        stdin_open = False
                        p.unregister(0)
                        continue
                    _write_all(master, data)
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(0, termios.TCSAFLUSH, saved)
        os.close(master)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
