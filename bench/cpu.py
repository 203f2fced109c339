#!/usr/bin/env python3
"""CPU time, in clock ticks, of a server (a process and its descendants), of PostgreSQL (every
process named postgres) and of the whole machine (busy time from /proc/stat), as one line:

    python3 bench/cpu.py PID          ->  SERVER POSTGRES MACHINE

Run before and after a load; the differences divided by the requests answered give the CPU each
request cost in each part (bench/patients.sh prints them). The machine's part that is neither the
server nor PostgreSQL is the load generator, the kernel's own threads and the background.
"""

import os
import sys


def main() -> int:
    root = int(sys.argv[1])
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1 : s.rindex(")")]
        fields = s[s.rindex(")") + 2 :].split()
        procs[int(d)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]))
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (_, ppid, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    server = sum(t for pid, (_, _, t) in procs.items() if pid in tree)
    postgres = sum(t for pid, (comm, _, t) in procs.items() if comm.startswith("postgres") and pid not in tree)
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    busy = sum(cpu[:3]) + sum(cpu[5:8])  # user nice system, irq softirq steal
    print(server, postgres, busy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
