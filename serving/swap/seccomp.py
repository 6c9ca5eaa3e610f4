"""Seccomp filters from a table of rules: which system calls fail, and with which errno.

A filter is installed with `install` and applies to this thread's process and everything it
starts, for ever; filters stack (the strictest answer wins). Linux on x86_64 and aarch64 only:
elsewhere `program` is None and `install` says False.

Each rule names one call and when it fails: always, unless its argument is one of some values
(kill(2) of this very process), if it is one of some values (fcntl(2) F_SETOWN), if it has any
of some bits (openat(2) for writing), or unless it has them (clone(2) of a thread). Arguments
are compared on their low 32 bits, all the kernel reads of an int or a flags word.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import platform
from dataclasses import dataclass

PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000
# (audit arch, whether the x32 ABI exists: its calls are refused whole, numbered differently)
ARCHES = {"x86_64": (0xC000003E, True), "aarch64": (0xC00000B7, False)}
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
NR_OFFSET, ARCH_OFFSET, ARGS_OFFSET = 0, 4, 16  # struct seccomp_data (little-endian)

Instruction = tuple[int, int, int, int]  # (code, jt, jf, k)


class When(enum.Enum):
    """When a rule's call fails."""

    ALWAYS = "always"
    UNLESS_ONE_OF = "unless one of"
    IF_ONE_OF = "if one of"
    IF_ANY_BIT = "if any bit"
    UNLESS_BITS = "unless bits"


@dataclass(frozen=True)
class Rule:
    """One call (its number on each machine; None: absent there) and when it fails."""

    numbers: dict[str, int | None]
    when: When = When.ALWAYS
    arg: int = 0
    values: tuple[int, ...] = ()
    error: int = errno.EPERM


def _body(rule: Rule) -> list[Instruction]:
    """The instructions after the call's number matched; each path ends in a RET."""
    deny, allow = (RET_K, 0, 0, SECCOMP_RET_ERRNO | rule.error), (RET_K, 0, 0, SECCOMP_RET_ALLOW)
    if rule.when is When.ALWAYS:
        return [deny]
    load = (LD_W_ABS, 0, 0, ARGS_OFFSET + 8 * rule.arg)
    mask = 0
    for value in rule.values:
        mask |= value & 0xFFFFFFFF
    if rule.when is When.IF_ANY_BIT:
        return [load, (JSET_K, 0, 1, mask), deny, allow]
    if rule.when is When.UNLESS_BITS:
        return [load, (JSET_K, 1, 0, mask), deny, allow]
    values = [v & 0xFFFFFFFF for v in rule.values]
    tests = [(JEQ_K, len(values) - i, 0, v) for i, v in enumerate(values)]
    ends = [deny, allow] if rule.when is When.UNLESS_ONE_OF else [allow, deny]
    return [load, *tests, *ends]


def program(machine: str, rules: list[Rule]) -> list[Instruction] | None:
    """The BPF program (code, jt, jf, k) applying `rules`; None on other machines."""
    if machine not in ARCHES:
        return None
    arch, x32 = ARCHES[machine]
    deny_all = (RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM)
    # Another ABI (i386 on x86_64) numbers calls differently: refuse every call made through it.
    code = [(LD_W_ABS, 0, 0, ARCH_OFFSET), (JEQ_K, 1, 0, arch), deny_all]
    if x32:
        code += [(LD_W_ABS, 0, 0, NR_OFFSET), (JGE_K, 0, 1, X32_SYSCALL_BIT), deny_all]
    for rule in rules:
        number = rule.numbers.get(machine)
        if number is None:
            continue
        body = _body(rule)
        code += [(LD_W_ABS, 0, 0, NR_OFFSET), (JEQ_K, 0, len(body), number), *body]
    return [*code, (RET_K, 0, 0, SECCOMP_RET_ALLOW)]


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def prctl(*args: int | ctypes.c_void_p) -> bool:
    """prctl(2) through libc; whether it succeeded."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    return libc.prctl(*(a if isinstance(a, ctypes.c_void_p) else ctypes.c_ulong(a)
                        for a in args)) == 0


def install(rules: list[Rule]) -> bool:
    """Apply `rules` to this process and its descendants for ever; False if not possible."""
    code = program(platform.machine(), rules)
    if code is None or not prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        return False
    filters = (_Filter * len(code))(*(_Filter(*instruction) for instruction in code))
    fprog = _Program(len(code), filters)
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_void_p(ctypes.addressof(fprog)))
