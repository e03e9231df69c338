"""Kernel constants for seccomp filters, spelled as in <linux/seccomp.h> and
<linux/filter.h>, plus the OCI names that map onto them (config-linux.md "Seccomp").
Plain integers and dicts: this module is imported on every container start."""

# Part of the cache key: bump it whenever the compiler's output for a profile changes.
COMPILER_VERSION = "3"  # 3: overlapping rules combine as libseccomp combines them

# <linux/seccomp.h>
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_KILL = SECCOMP_RET_KILL_THREAD
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
SECCOMP_DATA_IP = 8
SECCOMP_DATA_ARGS = 16
SECCOMP_DATA_SIZE = 64

BPF_MAXINSNS = 4096

# <linux/bpf_common.h>, <linux/filter.h>
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_MISC = 0x07
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_IMM = 0x00
BPF_ABS = 0x20
BPF_IND = 0x40
BPF_MEM = 0x60
BPF_LEN = 0x80
BPF_MSH = 0xA0
BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xA0
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_K = 0x00
BPF_X = 0x08
BPF_A = 0x10
BPF_TAX = 0x00
BPF_TXA = 0x80
BPF_MEMWORDS = 16

# OCI action name -> (SECCOMP_RET_* value, takes errnoRet)
ACTIONS = {
    "SCMP_ACT_KILL": (SECCOMP_RET_KILL_THREAD, False),
    "SCMP_ACT_KILL_THREAD": (SECCOMP_RET_KILL_THREAD, False),
    "SCMP_ACT_KILL_PROCESS": (SECCOMP_RET_KILL_PROCESS, False),
    "SCMP_ACT_TRAP": (SECCOMP_RET_TRAP, False),
    "SCMP_ACT_ERRNO": (SECCOMP_RET_ERRNO, True),
    "SCMP_ACT_TRACE": (SECCOMP_RET_TRACE, True),
    "SCMP_ACT_ALLOW": (SECCOMP_RET_ALLOW, False),
    "SCMP_ACT_LOG": (SECCOMP_RET_LOG, False),
    "SCMP_ACT_NOTIFY": (SECCOMP_RET_USER_NOTIF, False),
}
EPERM = 1

OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}


def action_name(ret):
    """SECCOMP_RET_* value -> readable name, e.g. 0x00050001 -> "ERRNO(1)"."""
    act = ret & SECCOMP_RET_ACTION_FULL
    data = ret & SECCOMP_RET_DATA
    if act == SECCOMP_RET_KILL_PROCESS:
        return "KILL_PROCESS"
    if act == SECCOMP_RET_KILL_THREAD:
        return "KILL_THREAD" if not data else f"KILL_THREAD(data={data})"
    if act == SECCOMP_RET_TRAP:
        return "TRAP" if not data else f"TRAP({data})"
    if act == SECCOMP_RET_ERRNO:
        return f"ERRNO({data})"
    if act == SECCOMP_RET_USER_NOTIF:
        return "NOTIFY"
    if act == SECCOMP_RET_TRACE:
        return f"TRACE({data})"
    if act == SECCOMP_RET_LOG:
        return "LOG"
    if act == SECCOMP_RET_ALLOW:
        return "ALLOW"
    return f"0x{ret:08x}"

