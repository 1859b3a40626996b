"""``python -m tests.sandboxed run ...`` is ``camd run ...`` under two of the unit's restrictions.

The kernel's own versions of ``MemoryDenyWriteExecute=yes`` (``PR_SET_MDWE``: no
memory that is writable and executable, ever) and ``NoNewPrivileges=yes``
(``PR_SET_NO_NEW_PRIVS``), set before camd imports anything: a test can then
show that camd, OpenCV and FFmpeg work under them without systemd as PID 1.
Exits 77 when the kernel has no ``PR_SET_MDWE`` (before Linux 6.3).
"""

from __future__ import annotations

import ctypes
import mmap
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
UNSUPPORTED = 77


def restrict() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.stderr.write("sandboxed: this kernel has no PR_SET_MDWE\n")
        sys.exit(UNSUPPORTED)
    try:
        mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        sys.stderr.write("sandboxed: MemoryDenyWriteExecute in force (a W+X mapping is refused)\n")
    else:
        raise RuntimeError("PR_SET_MDWE did not refuse a writable and executable mapping")


if __name__ == "__main__":
    restrict()
    from camd.__main__ import main

    sys.exit(main(sys.argv[1:]))
