"""The network case: three cluster nodes pulling a cluster's image set from an
upstream registry behind an emulated wide-area link, with no cache, through
cold caches, through warm caches, and through warm caches with the upstream
down.

The link: a network namespace of the bench's own (NET_NS) holding the upstream
registry (Debian's docker-registry, run directly) at UP_ADDR, joined to the
host by two TUN devices and link.py, which delays and rate-limits every packet
like `tc netem delay RTT/2 rate RATE` on both ends of a veth pair would. (The
kernels this bench runs on may lack sch_netem, this machine's does; one
emulator everywhere keeps the numbers comparable.) The addresses are TEST-NET-2
(RFC 5737), never routed anywhere: an `unreachable` route for NET_SUBNET stays
in place as long as the bench runs, so if the link went away, packets for the
upstream would be refused instead of following the default route off the
machine. The cache containers reach the upstream through the host's routing
into the TUN device; containerd reaches it directly for the no-cache case.
"""

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import (REGISTRIES, START_CONTAINERD, UPSTREAM_HOSTS, BenchError, log,
                     port_free, run)
from .environment import stop_pid

NET_NS = "drbn-up"
HOST_DEV = "drbn-h0"
NS_DEV = "drbn-u0"
NET_SUBNET = "198.51.100.248/29"  # TEST-NET-2, RFC 5737
HOST_ADDR = "198.51.100.249"
UP_ADDR = "198.51.100.250"
UP_PORT = 28090  # inside NET_NS
LOADER_PORT = 28091  # 127.0.0.1, only while the image set is pushed
NET_PREFIX = "drbench-net"
NET_PORT = 28071  # .. 28075
NODES = 3
REGISTRY_BIN = "/usr/bin/docker-registry"
LINK = Path(__file__).resolve().parent / "link.py"
PULL_TIMEOUT_S = 1800
IDLE_TIMEOUT_S = 300

# A cluster's image set: (registry, repository:tag, parent, MiB of its own
# layer). Two shared base layers ("os", and "runtime" on top of it) as
# distroless-style images share theirs; every layer is random bytes, so
# compression cannot shrink it.
BASES = [("os", None, 30), ("runtime", "os", 20)]
IMAGES = [
    ("registry.k8s.io", "kube-apiserver:v1.31.0", "runtime", 28),
    ("registry.k8s.io", "kube-controller-manager:v1.31.0", "runtime", 26),
    ("registry.k8s.io", "kube-scheduler:v1.31.0", "runtime", 17),
    ("registry.k8s.io", "kube-proxy:v1.31.0", "runtime", 24),
    ("registry.k8s.io", "etcd:3.5.15-0", "os", 22),
    ("registry.k8s.io", "coredns/coredns:v1.11.1", "os", 14),
    ("registry.k8s.io", "pause:3.10", None, 1),
    ("docker.io", "library/nginx:1.27", "os", 20),
    ("quay.io", "prometheus/prometheus:v2.54.0", "os", 30),
    ("quay.io", "jetstack/cert-manager-controller:v1.15.0", "runtime", 12),
    ("ghcr.io", "fluxcd/source-controller:v1.3.0", "runtime", 16),
    ("gcr.io", "k8s-minikube/storage-provisioner:v5", "os", 10),
]
# The access log line of registry 2.8 (combined log format on stdout):
# 1.2.3.4 - - [02/Dec/2026:06:38:17 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "agent"
ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')


def local_name(short):
    return f"localhost/{NET_PREFIX}-{short}:1"


def image_short(repo):
    return repo.split(":")[0].replace("/", "-")


def cache_names():
    return [f"{NET_PREFIX}-{r.replace('.', '-')}" for r in REGISTRIES]


def mib(n):
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def set_pdeathsig():
    """In a child before exec: die with the bench, even when it is killed hard."""
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def ip(*args, netns=None, check=True):
    argv = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return run(argv, check=check)


def registry_config(path, storage, addr):
    path.write_text(f"""version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {storage}
http:
  addr: {addr}
""")


class NetRun:
    """One of the four cases, measured."""

    def __init__(self, case):
        self.case = case
        self.seconds = None  # until every node has every image (or has given up)
        self.node_seconds = []
        self.ok = 0
        self.total = 0
        self.failed = []
        self.bytes = 0
        self.requests = 0
        self.blob_gets = 0
        self.blob_bytes = 0


class NetworkCase:
    # ---------------------------------------------------------------- set-up
    def net_remove_leftovers(self):
        """What an earlier run killed hard may have left, by exact name only."""
        caches = cache_names()
        self.podman("rm", "--force", "--ignore", "--volumes", *caches, check=False)
        existing = set(self.podman("volume", "ls", "--format", "{{.Name}}",
                                   check=False).stdout.split())
        if ours := [v for v in caches if v in existing]:
            self.podman("volume", "rm", "--force", *ours, check=False)
        for short in [b[0] for b in BASES] + [image_short(i[1]) for i in IMAGES]:
            if self.podman("image", "exists", local_name(short), check=False).returncode == 0:
                self.podman("rmi", "--force", local_name(short), check=False)
        if Path(f"/run/netns/{NET_NS}").exists():
            pids = run(["ip", "netns", "pids", NET_NS], check=False).stdout.split()
            for pid in pids:
                stop_pid(int(pid))
            ip("netns", "delete", NET_NS, check=False)
        if run(["ip", "link", "show", HOST_DEV], check=False).returncode == 0:
            ip("link", "delete", HOST_DEV, check=False)
        ip("route", "delete", "unreachable", NET_SUBNET, check=False)

    def net_check_free(self):
        """NET_SUBNET must be unused here: the bench's own addresses only."""
        addrs = ip("-o", "addr", "show", "to", NET_SUBNET).stdout.strip()
        routes = ip("route", "show", "table", "all", "to", "root", NET_SUBNET).stdout.strip()
        if addrs or routes:
            raise BenchError(f"{NET_SUBNET} is in use on this machine:\n{addrs}\n{routes}")

    def setup_link(self):
        self.net_remove_leftovers()
        self.net_check_free()
        # First the guard: from here on, packets for the subnet never leave.
        ip("route", "add", "unreachable", NET_SUBNET)
        self.cleanups.append(lambda: ip("route", "delete", "unreachable", NET_SUBNET,
                                        check=False))
        ip("netns", "add", NET_NS)
        self.cleanups.append(self.delete_netns)
        log(f"emulating the link: {self.args.rtt_ms} ms RTT, {self.args.rate_mbit} Mbit/s")
        self.link_log = open(self.tmp / "link.log", "w")
        self.link = subprocess.Popen(
            [sys.executable, str(LINK), HOST_DEV, NET_NS, NS_DEV, str(self.args.rtt_ms),
             str(self.args.rate_mbit)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.link_log, text=True)
        self.cleanups.append(self.stop_link)
        ready, _, _ = select.select([self.link.stdout], [], [], 10)
        if not ready or self.link.stdout.readline().strip() != "ready":
            raise BenchError(f"the link emulator did not start: "
                             f"{(self.tmp / 'link.log').read_text()[-2000:]}")
        ip("addr", "add", HOST_ADDR, "peer", UP_ADDR, "dev", HOST_DEV)
        ip("link", "set", HOST_DEV, "up")
        ip("link", "set", "lo", "up", netns=NET_NS)
        ip("addr", "add", UP_ADDR, "peer", HOST_ADDR, "dev", NS_DEV, netns=NET_NS)
        ip("link", "set", NS_DEV, "up", netns=NET_NS)
        route = ip("-o", "route", "get", UP_ADDR).stdout
        if f"dev {HOST_DEV} " not in route:
            raise BenchError(f"{UP_ADDR} is not routed into the link: {route}")

    def delete_netns(self):
        pids = run(["ip", "netns", "pids", NET_NS], check=False).stdout.split()
        for pid in pids:
            stop_pid(int(pid))
        ip("netns", "delete", NET_NS, check=False)

    def stop_link(self):
        with contextlib.suppress(OSError):
            self.link.stdin.close()  # the emulator ends at EOF; its devices go with it
        try:
            self.link.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.link.kill()
            self.link.wait()
        self.link_log.close()

    def start_registry(self, argv, name):
        out = open(self.tmp / f"{name}.access.log", "w")
        err = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             preexec_fn=set_pdeathsig)
        out.close()
        err.close()
        self.registries.append(p)
        return p

    def stop_registries(self):
        for p in self.registries:
            if p.poll() is None:
                stop_pid(p.pid)
                p.wait()

    def wait_http(self, url, proc, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                import urllib.request
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"registry at {url} did not come up")
            time.sleep(0.1)

    def build_and_push(self):
        """Build the image set FROM scratch with random layers, push it into the
        upstream's storage through a loader registry on loopback (so the push
        does not cross the emulated link), and remove the local images."""
        storage = self.tmp / "upstream"
        storage.mkdir()
        loader_cfg = self.tmp / "loader.yml"
        registry_config(loader_cfg, storage, f"127.0.0.1:{LOADER_PORT}")
        loader = self.start_registry([REGISTRY_BIN, "serve", str(loader_cfg)], "loader")
        self.wait_http(f"http://127.0.0.1:{LOADER_PORT}/v2/", loader)
        built = []
        self.cleanups.append(lambda: [self.podman("rmi", "--force", n, check=False)
                                      for n in built])
        total = sum(b[2] for b in BASES) + sum(i[3] for i in IMAGES)
        log(f"building {len(IMAGES)} images ({total} MiB of random layers, "
            f"{len(BASES)} shared base layers)")
        for short, parent, size in [*BASES, *[(image_short(i[1]), i[2], i[3])
                                                for i in IMAGES]]:
            ctx = self.tmp / "ctx"
            ctx.mkdir()
            with open(ctx / "layer.bin", "wb") as f:
                for _ in range(size):
                    f.write(os.urandom(1 << 20))
            (ctx / "Containerfile").write_text(
                f"FROM {local_name(parent) if parent else 'scratch'}\n"
                f"COPY layer.bin /{short}.bin\n")
            built.append(local_name(short))
            self.podman("build", "--quiet", "--layers=false", "-t", local_name(short), str(ctx))
            shutil.rmtree(ctx)
        log("pushing them to the upstream's storage")
        for _, repo, _, _ in IMAGES:
            self.podman("push", "--quiet", "--tls-verify=false", local_name(image_short(repo)),
                        f"docker://127.0.0.1:{LOADER_PORT}/{repo}")
        for name in reversed(built):
            self.podman("rmi", name, check=False)
        built.clear()
        stop_pid(loader.pid)
        loader.wait()
        blobs = [p for p in (storage / "docker/registry/v2/blobs").rglob("data") if p.is_file()]
        self.unique_bytes = sum(p.stat().st_size for p in blobs)
        layers = len(BASES) + len(IMAGES)
        self.blob_note = (f"{len(blobs)} blobs; {layers} layers, {len(IMAGES)} configs and "
                          f"{len(IMAGES)} manifests make {2 * len(IMAGES) + layers}")
        log(f"upstream holds {mib(self.unique_bytes)}: {self.blob_note}")
        return storage

    def start_upstream_in_ns(self, storage):
        cfg = self.tmp / "upstream.yml"
        registry_config(cfg, storage, f"{UP_ADDR}:{UP_PORT}")
        self.upstream_proc = self.start_registry(
            ["ip", "netns", "exec", NET_NS, REGISTRY_BIN, "serve", str(cfg)], "upstream")
        self.access_log = self.tmp / "upstream.access.log"
        self.wait_http(f"http://{UP_ADDR}:{UP_PORT}/v2/", self.upstream_proc)

    def measure_rtt(self):
        samples = []
        for _ in range(5):
            with socket.socket() as s:
                t0 = time.perf_counter()
                s.connect((UP_ADDR, UP_PORT))
                samples.append((time.perf_counter() - t0) * 1000)
        return statistics.median(samples)

    def start_nodes(self):
        self.nodes = []
        for i in range(1, NODES + 1):
            d = self.tmp / f"node{i}"
            self.cleanups.append(lambda d=d: self.stop_containerd(d))
            sock = run([str(START_CONTAINERD), str(d)], env=self.env).stdout.strip()
            self.nodes.append((d, sock))

    def stop_containerd(self, d):
        with contextlib.suppress(OSError, ValueError):
            stop_pid(int((d / "containerd.pid").read_text()))

    def write_hosts(self):
        """hosts.toml dirs: straight to the upstream, and drcache's own for the
        caches; /etc/hosts for the pulls maps every fallback name to loopback,
        where nothing answers, so a pull can only succeed the way it is meant to."""
        self.certs_direct = self.tmp / "certs-direct"
        for name in REGISTRIES:
            server = "https://registry-1.docker.io" if name == "docker.io" else f"https://{name}"
            (self.certs_direct / name).mkdir(parents=True)
            (self.certs_direct / name / "hosts.toml").write_text(
                f'server = "{server}"\n\n[host."http://{UP_ADDR}:{UP_PORT}"]\n'
                f'  capabilities = ["pull", "resolve"]\n')
        self.certs_cache = self.tmp / "certs-cache"
        run(self.dr("-q", "hosts-toml", "--out", str(self.certs_cache), config=self.net_config),
            env=self.dr_env)
        self.net_hosts = self.tmp / "net-hosts"
        self.net_hosts.write_text("127.0.0.1 localhost " + " ".join(UPSTREAM_HOSTS) + "\n")

    def write_net_config(self):
        self.net_config = self.tmp / "drcache-net.toml"
        text = (f'image = "{self.image}"\nprefix = "{NET_PREFIX}"\n'
                f'bind = "127.0.0.1"\nhost = "127.0.0.1"\n')
        for i, name in enumerate(REGISTRIES):
            text += (f'\n[[registry]]\nname = "{name}"\nupstream = "http://{UP_ADDR}:{UP_PORT}"\n'
                     f"port = {NET_PORT + i}\n")
        self.net_config.write_text(text)

        def remove_caches():
            run(self.dr("-q", "clean", "--volumes", config=self.net_config), env=self.dr_env,
                check=False)
            self.podman("rm", "--force", "--ignore", "--volumes", *cache_names(), check=False)
        self.cleanups.append(remove_caches)

    # ---------------------------------------------------------------- measuring
    def refs(self):
        return [f"{reg}/{repo}" for reg, repo, _, _ in IMAGES]

    def reset_nodes(self):
        """Every node's content store empty, so each pull transfers everything."""
        for _, sock in self.nodes:
            ctr = ["ctr", "--address", sock]
            run([*ctr, "images", "rm", "--sync", *self.refs()], env=self.env, check=False)
            left = run([*ctr, "content", "ls", "-q"], env=self.env).stdout.split()
            if left:
                raise BenchError(f"containerd {sock} still holds content after rm: {left}")

    def pull_everywhere(self, r, certs):
        """All nodes at once, each pulling the set one image after the other (as
        a kubelet does by default); the time is the slowest node's."""
        script = ('mount --bind "$1" /etc/hosts || exit 99; sock=$2 certs=$3 log=$4; shift 4; '
                  'for ref; do if ctr --address "$sock" images pull --hosts-dir "$certs" '
                  '"$ref" >/dev/null 2>>"$log"; then echo "ok $ref"; '
                  'else echo "fail $ref"; fi; done')
        self.reset_nodes()
        self.settle()
        procs = []
        t0 = time.perf_counter()
        for d, sock in self.nodes:
            procs.append(subprocess.Popen(
                ["unshare", "-m", "sh", "-c", script, "sh", str(self.net_hosts), sock,
                 str(certs), str(d / "pulls.log"), *self.refs()],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=self.env,
                start_new_session=True))  # a process group: killed with its ctr
        self.pulls = procs
        done = {}
        while len(done) < len(procs):
            for i, p in enumerate(procs):
                if i not in done and p.poll() is not None:
                    done[i] = time.perf_counter() - t0
            if time.perf_counter() - t0 > PULL_TIMEOUT_S:
                self.kill_pulls()
                raise BenchError(f"{r.case}: pulls not done in {PULL_TIMEOUT_S}s")
            time.sleep(0.02)
        r.node_seconds = [done[i] for i in range(len(procs))]
        r.seconds = max(r.node_seconds)
        for p, (d, _) in zip(procs, self.nodes):
            lines = p.stdout.read().split()
            p.stdout.close()
            if p.returncode != 0:
                raise BenchError(f"{r.case}: node {d.name} exited {p.returncode}")
            results = list(zip(lines[0::2], lines[1::2]))
            r.total += len(results)
            r.ok += sum(1 for status, _ in results if status == "ok")
            r.failed += [f"{d.name}:{ref}" for status, ref in results if status != "ok"]
        log(f"  {r.case}: {r.seconds:.1f} s, nodes "
            + ", ".join(f"{s:.1f}" for s in r.node_seconds) + f" s, {r.ok}/{r.total} pulled")

    def kill_pulls(self):
        for p in getattr(self, "pulls", []):
            if p.poll() is None:  # still running: the group is still ours
                with contextlib.suppress(OSError):
                    os.killpg(p.pid, signal.SIGKILL)  # the shell and the ctr it runs
                p.wait()

    def wait_upstream_idle(self):
        """Registry 2.8 logs a request when its response is complete, and a
        cache may still be storing a blob after the client got it: wait until
        the access log has not grown for 3 s and no upstream socket has unsent
        data."""
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_size = self.access_log.stat().st_size
            ss = run(["ip", "netns", "exec", NET_NS, "ss", "-Htn", "state", "established",
                      f"( sport = :{UP_PORT} )"], check=False).stdout
            unsent = sum(int(line.split()[1]) for line in ss.splitlines() if line.strip())
            if now_size != size or unsent:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= 3:
                return
            time.sleep(0.5)
        raise BenchError(f"the upstream did not go idle in {IDLE_TIMEOUT_S}s")

    def count_upstream(self, r, offset):
        with open(self.access_log) as f:
            f.seek(offset)
            lines = f.read().splitlines()
        for line in lines:
            m = ACCESS.match(line)
            if not m:
                continue
            method, path, status, size = m.groups()
            size = 0 if size == "-" else int(size)
            r.requests += 1
            r.bytes += size
            if method == "GET" and "/blobs/" in path and status.startswith("2"):
                r.blob_gets += 1
                r.blob_bytes += size

    def log_offset(self):
        return self.access_log.stat().st_size

    def measured(self, case, certs):
        r = NetRun(case)
        offset = self.log_offset()
        self.pull_everywhere(r, certs)
        if r.ok != r.total and "offline" not in case:
            raise BenchError(f"{case}: pulls failed: {r.failed}")
        if self.upstream_proc.poll() is None:
            self.wait_upstream_idle()
        self.count_upstream(r, offset)
        log(f"  {case}: upstream served {mib(r.bytes)} in {r.requests} requests "
            f"({r.blob_gets} blob GETs)")
        self.network["runs"].append(r)
        return r

    # ---------------------------------------------------------------- the case
    def case_network(self):
        for tool in ("ip", "ss", "containerd", "ctr", "unshare", REGISTRY_BIN):
            if not shutil.which(tool, path=self.env["PATH"]):
                raise BenchError(f"network case: {tool} not found")
        busy = [p for p in [*range(NET_PORT, NET_PORT + len(REGISTRIES)), LOADER_PORT]
                if not port_free(p)]
        if busy:
            raise BenchError(f"network case: ports in use: {busy}")
        self.registries = []
        self.cleanups.append(self.stop_registries)
        self.cleanups.append(self.kill_pulls)
        self.network = {"runs": []}
        self.setup_link()
        storage = self.build_and_push()
        self.start_upstream_in_ns(storage)
        self.network["rtt_measured_ms"] = self.measure_rtt()
        log(f"TCP connect time to the upstream: {self.network['rtt_measured_ms']:.1f} ms")
        self.write_net_config()
        self.start_nodes()
        self.write_hosts()

        log("case 1: no cache (straight from the upstream)")
        self.measured("no cache", self.certs_direct)

        log("case 2: cold caches (empty volumes)")
        run(self.dr("-q", "clean", "--volumes", config=self.net_config), env=self.dr_env)
        t0 = time.perf_counter()
        run(self.dr("-q", "start", config=self.net_config), env=self.dr_env)
        self.network["start_cold_s"] = time.perf_counter() - t0
        self.measured("cold caches", self.certs_cache)

        log("case 3: warm caches")
        self.measured("warm caches", self.certs_cache)

        log("case 4: warm caches, upstream down (stopped; caches restarted)")
        stop_pid(self.upstream_proc.pid)
        self.upstream_proc.wait()
        run(self.dr("-q", "stop", config=self.net_config), env=self.dr_env)
        t0 = time.perf_counter()
        p = run(self.dr("start", config=self.net_config), env=self.dr_env, check=False)
        self.network["start_offline_s"] = time.perf_counter() - t0
        self.network["start_offline_rc"] = p.returncode
        status = json.loads(run(self.dr("--json", "status", config=self.net_config),
                                env=self.dr_env, check=False).stdout or "{}")
        modes = {str(c.get("registry")): str(c.get("mode")) for c in status.get("caches", [])}
        self.network["offline_modes"] = sorted(set(modes.values()))
        if p.returncode != 0 or set(modes.values()) != {"offline"}:
            # What start said is the only account of why a cache is not offline.
            log(f"  start with the upstream down exited {p.returncode}; cache modes: "
                + ", ".join(f"{k}={v}" for k, v in sorted(modes.items())))
            log("  its output:\n" + (p.stderr or "")[-4000:])
        self.measured("offline (upstream down)", self.certs_cache)

    # ---------------------------------------------------------------- report
    def network_section(self):
        n, a = self.network, self.args
        if not n or not n["runs"]:
            return []
        runs = {r.case: r for r in n["runs"]}
        u = self.unique_bytes
        out = ["", "## Network: three nodes pulling a cluster's images", "",
               f"- link: {a.rtt_ms} ms round trip, {a.rate_mbit} Mbit/s each way "
               f"(user-space TUN relay, scripts/benchlib/link.py; TCP connect time "
               f"measured {n['rtt_measured_ms']:.1f} ms)",
               f"- upstream and caches: Debian docker-registry "
               f"{self.registry_version()} (distribution 2.8: a blob missed by a cache is "
               "fetched from the upstream twice, once streamed to the client and once "
               "copied into storage; concurrent misses of one blob each stream it)",
               f"- image set: {len(IMAGES)} images, {len(BASES)} shared base layers, "
               f"{mib(u)} unique ({self.blob_note})",
               f"- nodes: {NODES} containerd instances, all at once, each pulling the set "
               "one image after the other; the time is the slowest node's",
               f"- cold caches started in {n.get('start_cold_s', 0):.2f} s (not in the pull "
               f"time); with the upstream down `drcache start` took "
               f"{n.get('start_offline_s', 0):.2f} s (exit {n.get('start_offline_rc')}, "
               f"cache modes: {', '.join(n.get('offline_modes', [])) or '?'})",
               "",
               "| case | all nodes done | per node | upstream bytes | x unique | requests "
               "| blob GETs | images pulled |",
               "|---|---|---|---|---|---|---|---|"]
        for r in n["runs"]:
            out.append(f"| {r.case} | {r.seconds:.1f} s | "
                       + "/".join(f"{s:.1f}" for s in r.node_seconds)
                       + f" s | {mib(r.bytes)} | {r.bytes / u:.2f} | {r.requests} | "
                       f"{r.blob_gets} | {r.ok}/{r.total} |")
        out += ["", "| ratio or target | value | target | result |", "|---|---|---|---|"]

        def verdict(ok):
            return "met" if ok else "missed"
        none, cold, warm = runs.get("no cache"), runs.get("cold caches"), runs.get("warm caches")
        off = runs.get("offline (upstream down)")
        if none and warm:
            ratio = warm.seconds / none.seconds
            out.append(f"| warm caches time / no-cache time | {ratio:.3f} | <= 0.2 | "
                       f"{verdict(ratio <= 0.2)} |")
        if warm:
            out.append(f"| blobs fetched from the upstream, warm | {warm.blob_gets} | 0 | "
                       f"{verdict(warm.blob_gets == 0)} |")
        if off:
            out.append(f"| images pulled offline | {off.ok}/{off.total} | all | "
                       f"{verdict(off.total > 0 and off.ok == off.total)} |")
        if cold:
            out.append(f"| cold: upstream bytes / unique bytes | {cold.bytes / u:.2f} | - | - |")
        if warm:
            out.append(f"| warm: upstream bytes / unique bytes | {warm.bytes / u:.4f} | - | - |")
        if none:
            out.append(f"| no cache: upstream bytes / unique bytes | {none.bytes / u:.2f} | - "
                       f"| - |")
            out.append(f"| no cache: link throughput | "
                       f"{none.bytes * 8 / none.seconds / 1e6:.1f} Mbit/s | - | - |")
        if off and off.failed:
            out.append("")
            out.append(f"Offline failures: {', '.join(off.failed)}")
        return out

    def registry_version(self):
        p = run([REGISTRY_BIN, "--version"], check=False)
        return p.stdout.split()[-1] if p.returncode == 0 and p.stdout.split() else "?"
