"""Names, constants and small helpers every part of the bench uses."""

import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BASELINE = REPO / "scripts" / "bench-baseline.sh"
START_CONTAINERD = REPO / "scripts" / "start-containerd.sh"

REGISTRIES = ["quay.io", "docker.io", "registry.k8s.io", "ghcr.io", "gcr.io"]
DR_PREFIX = "drbench"  # drcache's caches
BASE_PREFIX = "drbase"  # the baseline's caches
UPSTREAM = "drbench-upstream"
UPSTREAM_PORT = 28050
DR_PORT = 28051  # .. 28055
BASE_PORT = 28061  # .. 28065
BIG_LOCAL = "localhost/drbench-big:1"
BIG_REPO = "bench/big:1"
BIG_LAYERS = 4
BIG_LAYER_MIB = 25
# Upstream names the containerd pull might fall back to: all mapped to loopback.
UPSTREAM_HOSTS = ["quay.io", "docker.io", "registry-1.docker.io", "registry.k8s.io",
                  "ghcr.io", "gcr.io"]

CASES = ["start-warm", "start-cold", "podman-calls", "pull", "status", "warm", "network"]


def names(prefix):
    return [f"{prefix}-{r.replace('.', '-')}" for r in REGISTRIES]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def run(argv, *, env=None, check=True, capture=True, input=None):
    """Run a helper command (not measured); on failure raise with its output."""
    p = subprocess.run(argv, env=env, input=input, text=True,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE if capture else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise BenchError(f"`{shlex.join(map(str, argv))}` exited {p.returncode}\n"
                         f"{(p.stdout or '')[-2000:]}{(p.stderr or '')[-2000:]}")
    return p


def timed(argv, env=None, expect=0):
    """Wall time of one measured command; its exit status must be `expect`."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != expect:
        raise BenchError(f"`{shlex.join(map(str, argv))}` exited {p.returncode} "
                         f"(expected {expect})\n{p.stderr[-3000:]}")
    return elapsed


def http_status(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_ready(ports, timeout=30.0):
    deadline = time.monotonic() + timeout
    for port in ports:
        while http_status(f"http://127.0.0.1:{port}/v2/") != 200:
            if time.monotonic() > deadline:
                raise BenchError(f"registry on port {port} not ready in {timeout}s")
            time.sleep(0.05)


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False
