"""OCI architectures: AUDIT_ARCH value, word size, byte order and syscall table.

AUDIT_ARCH_* = EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000)
(<linux/audit.h>, <linux/elf-em.h>). x32 shares AUDIT_ARCH_X86_64 and is told apart by
__X32_SYSCALL_BIT in nr. Word size is the width of a syscall argument as the filter
compares it: x32 and mips n32 are 32-bit ABIs, so, like libseccomp, only the low word
of an argument is compared for them.
"""

AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_ARM = 0x40000028
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_MIPS = 0x00000008
AUDIT_ARCH_MIPSEL = 0x40000008
AUDIT_ARCH_MIPS64 = 0x80000008
AUDIT_ARCH_MIPS64N32 = 0xA0000008
AUDIT_ARCH_MIPSEL64 = 0xC0000008
AUDIT_ARCH_MIPSEL64N32 = 0xE0000008
AUDIT_ARCH_PPC = 0x00000014
AUDIT_ARCH_PPC64 = 0x80000015
AUDIT_ARCH_PPC64LE = 0xC0000015
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
AUDIT_ARCH_PARISC = 0x0000000F
AUDIT_ARCH_PARISC64 = 0x8000000F
AUDIT_ARCH_RISCV64 = 0xC00000F3
AUDIT_ARCH_LOONGARCH64 = 0xC0000102

X32_SYSCALL_BIT = 0x40000000


class Arch:
    __slots__ = ("name", "audit", "bits", "little", "table")

    def __init__(self, name, audit, bits, little, table):
        self.name = name
        self.audit = audit
        self.bits = bits
        self.little = little
        self.table = table

    def __repr__(self):
        return f"Arch({self.name})"


# OCI name (without SCMP_ARCH_) -> Arch
ARCHES = {a.name: a for a in (
    Arch("x86", AUDIT_ARCH_I386, 32, True, "x86"),
    Arch("x86_64", AUDIT_ARCH_X86_64, 64, True, "x86_64"),
    Arch("x32", AUDIT_ARCH_X86_64, 32, True, "x32"),
    Arch("arm", AUDIT_ARCH_ARM, 32, True, "arm"),
    Arch("aarch64", AUDIT_ARCH_AARCH64, 64, True, "aarch64"),
    Arch("mips", AUDIT_ARCH_MIPS, 32, False, "mips"),
    Arch("mipsel", AUDIT_ARCH_MIPSEL, 32, True, "mips"),
    Arch("mips64", AUDIT_ARCH_MIPS64, 64, False, "mips64"),
    Arch("mips64n32", AUDIT_ARCH_MIPS64N32, 32, False, "mips64n32"),
    Arch("mipsel64", AUDIT_ARCH_MIPSEL64, 64, True, "mips64"),
    Arch("mipsel64n32", AUDIT_ARCH_MIPSEL64N32, 32, True, "mips64n32"),
    Arch("ppc", AUDIT_ARCH_PPC, 32, False, "ppc"),
    Arch("ppc64", AUDIT_ARCH_PPC64, 64, False, "ppc64"),
    Arch("ppc64le", AUDIT_ARCH_PPC64LE, 64, True, "ppc64"),
    Arch("s390", AUDIT_ARCH_S390, 32, False, "s390"),
    Arch("s390x", AUDIT_ARCH_S390X, 64, False, "s390x"),
    Arch("parisc", AUDIT_ARCH_PARISC, 32, False, "parisc"),
    Arch("parisc64", AUDIT_ARCH_PARISC64, 64, False, "parisc64"),
    Arch("riscv64", AUDIT_ARCH_RISCV64, 64, True, "riscv64"),
    Arch("loongarch64", AUDIT_ARCH_LOONGARCH64, 64, True, "loongarch64"),
)}

# os.uname().machine -> OCI arch name
_MACHINES = {
    "x86_64": "x86_64", "i386": "x86", "i686": "x86", "aarch64": "aarch64",
    "armv7l": "arm", "armv6l": "arm", "riscv64": "riscv64", "s390x": "s390x",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "mips64": "mips64", "loongarch64": "loongarch64",
    "parisc64": "parisc64", "parisc": "parisc", "mips": "mips", "ppc": "ppc",
}


def native_name(machine=None, byteorder=None):
    import posix        # not os: a cache miss on the start path would import it for this
    import sys
    machine = machine or posix.uname().machine
    name = _MACHINES.get(machine, machine)
    if name.startswith("mips") and (byteorder or sys.byteorder) == "little":
        name = name.replace("mips", "mipsel")
    return name


def load_table(arch):
    """The generated table module for `arch` (imported on first use only)."""
    return __import__("ocirun.seccomp.tables." + arch.table, fromlist=["NAMES"])
