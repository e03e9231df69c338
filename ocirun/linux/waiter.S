# The waiter of `create` (x86_64): the source of trampoline.py's _WAITER bytes
# (tests/unit/test_waiter.py assembles it and compares). Entered by execve with
#   argv = ["ocirun-exec", path, arg0, arg1, ...]
# as the trampoline is; it waits for `start` (unless its fifo fd is -1: then it only
# loads the filter, for a profile that refuses the execveat that started it), loads
# the noNewPrivileges filter if it carries one, and execs path. Its data words, filled
# in per container by trampoline.waiter(), follow the code; the filter follows them.
#   as --64 -o waiter.o waiter.S && objcopy -O binary -j .text waiter.o waiter.bin
    .intel_syntax noprefix
    .text
    .globl _start
_start:
    mov  edi, 4                     # prctl(PR_SET_DUMPABLE, 0): execve made us
    xor  esi, esi                   # dumpable; nothing in the container may ptrace
    mov  eax, 157                   # us or open our fds (a profile that refuses
    syscall                         # it gets no waiter: exit 127)
    test rax, rax
    jnz  fail127
    mov  rbx, rsp                   # argc, argv, envp (rbx survives syscalls)
    mov  rax, [rbx]
    cmp  rax, 3                     # argc >= 3
    jb   fail127
    mov  rcx, [rbx+8]               # argv[0] starts with "ocirun-e" (a script naming
    mov  rcx, [rcx]                 # us as its interpreter gets its own argv[0])
    movabs rdx, 0x652d6e757269636f
    cmp  rcx, rdx
    jne  fail127
    sub  rsp, 32                    # struct sigaction: handler, flags, restorer, mask
    lea  rax, [rip+die]
    mov  [rsp], rax
    mov  qword ptr [rsp+8], 0x04000000   # SA_RESTORER: x86_64 requires one (die
    mov  [rsp+16], rax                   # never returns)
    mov  qword ptr [rsp+24], 0
    lea  r12, [rip+sigs]
1:  movzx edi, byte ptr [r12]       # as pid 1 of its namespace the waiter would
    test edi, edi                   # ignore signals it has no handler for: `kill`
    jz   2f                         # of a created container would be lost
    mov  rsi, rsp
    xor  edx, edx
    mov  r10d, 8
    mov  eax, 13                    # rt_sigaction(sig, &act, NULL, 8)
    syscall
    test rax, rax
    jnz  fail127
    inc  r12
    jmp  1b
2:  mov  edi, 2                     # rt_sigprocmask(SIG_SETMASK, &empty, NULL, 8):
    lea  rsi, [rsp+24]              # the init execs us with every signal blocked, so
    xor  edx, edx                   # one sent before our handlers were in place is
    mov  r10d, 8                    # pending, and delivered now
    mov  eax, 14
    syscall
    test rax, rax
    jnz  fail127
    mov  edi, [rip+fifo_fd]         # no fifo (-1): nothing to wait for
    cmp  edi, -1
    je   4f
    mov  rsi, rsp                   # read(fifo_fd, buf, 1): `ocirun start` writes
                                    # one byte into the exec fifo
    mov  edx, 1
    xor  eax, eax
    syscall
    cmp  rax, 1
    jne  fail1
    mov  edi, [rip+fifo_fd]         # close(fifo_fd): not the container's
    mov  eax, 3
    syscall
4:  movzx eax, word ptr [rip+fprog] # a filter to load?
    test eax, eax
    jz   3f
    mov  edi, 1                     # seccomp(SECCOMP_SET_MODE_FILTER, flags, &fprog)
    mov  rsi, [rip+sflags]
    lea  rdx, [rip+fprog]
    mov  eax, 317
    syscall
    test rax, rax
    jnz  fail127
3:  mov  rdi, [rbx+16]              # execve(argv[1], &argv[2], envp); the caught
    lea  rsi, [rbx+24]              # signals are default again after it
    mov  rax, [rbx]
    lea  rdx, [rbx+rax*8+16]
    mov  eax, 59
    syscall
fail127:
    mov  edi, 127
    jmp  exit
fail1:
    mov  edi, 1
exit:
    mov  eax, 231                   # exit_group
    syscall
die:                                # the handler: exit_group(128 + signal)
    add  edi, 128
    mov  eax, 231
    syscall
sigs:                               # HUP INT QUIT TERM USR1 USR2 ALRM (init.py _WAIT_SIGNALS)
    .byte 1, 2, 3, 15, 10, 12, 14, 0
    .balign 8
fifo_fd:                            # trampoline._WAITER_DATA: u32 fd, 4 bytes
    .long 0, 0
sflags:                             # u64 seccomp flags
    .quad 0
fprog:                              # struct sock_fprog: u16 length (instructions),
    .short 0, 0, 0, 0               # 6 bytes, u64 address of the filter
    .quad 0
