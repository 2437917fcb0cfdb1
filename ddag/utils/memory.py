"""How much memory this process may still take: the bound behind every "refused within a few
hundred MB" promise (untrusted files, feature sets, re-ranking)."""

import os
import resource


def readable_bytes() -> int:
    """What one untrusted file may make this process allocate: half of what it may still
    allocate (`allocatable_bytes`)."""
    return allocatable_bytes() // 2


def allocatable_bytes() -> int:
    """Bytes this process may still allocate: the machine's available memory, and what an
    address-space limit (RLIMIT_AS) leaves above the process's current size."""
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/status") as status:
                used = next(int(x.split()[1]) * 1024 for x in status if x.startswith("VmSize"))
            available = min(available, max(0, limit - used))
    except (OSError, StopIteration, ValueError):
        pass
    return available
