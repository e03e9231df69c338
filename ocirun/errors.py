"""One exception hierarchy. Each layer adds context once; only the CLI reports.

Messages are single lines: callers (containerd, podman) match substrings such as
"does not exist", "container not running", "executable file not found in $PATH".
Library callers (ocirun.api) catch OciError, or one of its subclasses below.
"""


class OciError(Exception):
    """A failure reported to the user as one line; exit code 1."""

    exit_code: int = 1

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg

    def __str__(self) -> str:
        return self.msg


class ConfigError(OciError):
    """config.json (or process.json) is invalid; `field` is its JSON path."""

    def __init__(self, field: str, msg: str):
        super().__init__(f"{field}: {msg}" if field else msg)
        self.field = field


class UsageError(OciError):
    """Bad command line (for the library: a bad argument, such as an unknown signal
    name or an invalid container id)."""


class NotFound(OciError):
    """The container does not exist (callers match "does not exist")."""

    def __init__(self, cid: str):
        super().__init__(f"container `{cid}` does not exist")


class StateError(OciError):
    """The container is in the wrong state for the operation."""


def os_error(context: str, exc: OSError) -> OciError:
    """OciError for a failed syscall: "mount `proc` on `/proc`: EPERM (Operation not permitted)"."""
    import errno
    import posix

    code = exc.errno or 0
    name = errno.errorcode.get(code, str(code))
    return OciError(f"{context}: {name} ({posix.strerror(code)})")
