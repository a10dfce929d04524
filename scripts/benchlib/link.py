"""A wide-area link emulated in user space, for kernels without `tc netem`.

    python3 link.py HOST_DEV NETNS NS_DEV RTT_MS RATE_MBIT

Creates the TUN device HOST_DEV in the caller's network namespace and NS_DEV
inside the network namespace NETNS (a name under /run/netns), then relays IP
packets between the two the way `netem delay RTT/2 rate RATE` on each end
would: every packet waits until the link in its direction is free, takes
len * 8 / RATE to cross it, and arrives RTT/2 later. A packet that would wait
more than MAX_QUEUE_S for the link is dropped (a full router buffer), which is
what makes TCP find the rate. Packets keep their order per direction.

The devices carry GSO super-packets (virtio-net headers, TSO offload), as a
veth does, so the relay handles a few thousand packets per second instead of
tens of thousands. The devices exist as long as this process runs: it prints
`ready` once both are up for configuration, and exits on SIGTERM, when its
parent dies, or when stdin closes.
"""

import collections
import ctypes
import fcntl
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
VNET_HDR = 10  # sizeof(struct virtio_net_hdr), the TUN default
READ_SIZE = 65536 + VNET_HDR + 64
MAX_QUEUE_S = 0.1  # bottleneck buffer: 100 ms of the rate


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(),
                                           IFF_TUN | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    return fd


def enter_netns(name):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {name}")
    os.close(fd)


def relay(a, b, one_way_s, bytes_per_s, stop_fd):
    peer = {a: b, b: a}
    queue = {a: collections.deque(), b: collections.deque()}  # (arrival, packet)
    link_free = {a: 0.0, b: 0.0}
    while True:
        now = time.monotonic()
        timeout = None
        for src, q in queue.items():
            while q and q[0][0] <= now:
                packet = q.popleft()[1]
                try:
                    os.write(peer[src], packet)
                except OSError:
                    pass  # the stack refused it: a lost packet
            if q:
                wait = q[0][0] - now
                timeout = wait if timeout is None else min(timeout, wait)
        ready, _, _ = select.select([a, b, stop_fd], [], [], timeout)
        if stop_fd in ready:
            return
        for src in ready:
            for _ in range(64):  # bounded: the other direction gets its turn
                try:
                    packet = os.read(src, READ_SIZE)
                except BlockingIOError:
                    break
                now = time.monotonic()
                start = max(now, link_free[src])
                if start - now > MAX_QUEUE_S:
                    continue  # buffer full: dropped
                link_free[src] = start + (len(packet) - VNET_HDR) / bytes_per_s
                queue[src].append((link_free[src] + one_way_s, packet))


def main():
    host_dev, netns, ns_dev, rtt_ms, rate_mbit = sys.argv[1:6]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        return 1  # the parent is already gone
    host_fd = open_tun(host_dev)
    enter_netns(netns)
    ns_fd = open_tun(ns_dev)
    print("ready", flush=True)
    relay(host_fd, ns_fd, float(rtt_ms) / 2000, float(rate_mbit) * 1e6 / 8, sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
