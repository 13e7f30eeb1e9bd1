"""python3 securebits_of.py PID: prints the securebits of a running process (x86_64, root).

Securebits are in no /proc file, so the process is made to call prctl(PR_GET_SECUREBITS)
itself: ptrace attach, point the instruction pointer at a `syscall` instruction of its own
code with the prctl number in rax, single-step, read rax, put every register back, detach.
gdb's `print prctl(27, ...)` does the same but also saves and restores the extended (XSAVE)
register state, which fails on CPUs with AMX ("Couldn't write extended state status: Bad
address"); only the general registers are touched here. The interrupted system call of the
process (a sleep, a poll) is restarted by the kernel as after any ptrace stop.
"""
import ctypes
import os
import sys

PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SINGLESTEP = 12, 13, 16, 17, 9
SYS_PRCTL, PR_GET_SECUREBITS = 157, 27
SYSCALL = b'\x0f\x05'

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class Regs(ctypes.Structure):  # struct user_regs_struct, x86_64
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx',
        'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds',
        'es', 'fs', 'gs')]


def ptrace(request, pid, addr=None, data=None):
    if libc.ptrace(request, pid, addr, data) == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, 'ptrace(%d, %d): %s' % (request, pid, os.strerror(errno)))


def syscall_instruction(pid) -> int:
    """The address of a `syscall` instruction in an executable mapping of the process."""
    with open('/proc/%d/maps' % pid) as maps, open('/proc/%d/mem' % pid, 'rb') as mem:
        for line in maps:
            fields = line.split()
            if 'x' not in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split('-'))
            try:
                mem.seek(start)
                offset = mem.read(min(end - start, 1 << 20)).find(SYSCALL)
            except OSError:  # [vsyscall] and other unreadable mappings
                continue
            if offset >= 0:
                return start + offset
    raise RuntimeError('no syscall instruction found in process %d' % pid)


def securebits(pid: int) -> int:
    ptrace(PTRACE_ATTACH, pid)
    try:
        os.waitpid(pid, 0)
        saved, regs = Regs(), Regs()
        ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(saved))
        ctypes.pointer(regs)[0] = saved
        regs.rip = syscall_instruction(pid)
        regs.rax, regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8 = SYS_PRCTL, PR_GET_SECUREBITS, 0, 0, 0, 0
        regs.orig_rax = 2 ** 64 - 1  # -1: no system call to restart before ours
        ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(regs))
        ptrace(PTRACE_SINGLESTEP, pid)
        os.waitpid(pid, 0)
        ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs))
        ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(saved))
        result = ctypes.c_longlong(regs.rax).value
        if result < 0:
            raise OSError(-result, 'prctl(PR_GET_SECUREBITS) in process %d: %s' % (
                pid, os.strerror(-result)))
        return result
    finally:
        ptrace(PTRACE_DETACH, pid)


if __name__ == '__main__':
    print(securebits(int(sys.argv[1])))
