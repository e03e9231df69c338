"""Generated syscall tables, one module per ABI (see gen.py).

Only VERSION lives here: the cache key needs it, and a cache hit must not
import a table."""
VERSION = 'v7.1.0-rc4 2026-05-19'
MODULES = ('x86', 'x86_64', 'x32', 'arm', 'aarch64', 'loongarch64', 'mips', 'mips64', 'mips64n32', 'parisc', 'parisc64', 'ppc', 'ppc64', 'riscv64', 's390', 's390x')
