"""The loopback cases: drcache against the older helper's algorithm and against
the physical limit, on one machine with no network in between."""

import collections
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .common import (BIG_LAYER_MIB, BIG_LAYERS, BIG_LOCAL, BIG_REPO, DR_PORT, REGISTRIES,
                     START_CONTAINERD, UPSTREAM, UPSTREAM_HOSTS, UPSTREAM_PORT, BenchError,
                     log, run, timed)
from .result import Result


class Cases:
    def case_start_warm(self):
        r = Result("start, warm (all running and current)", "<= 0.12", 0.12,
                   labels=("drcache start", "baseline"))
        self.results.append(r)
        self.bring_up_both()
        self.rounds(r, lambda: timed(self.dr("-q", "start"), self.dr_env),
                    lambda: timed(self.baseline(), self.base_env()))

    def case_start_cold(self):
        r = Result("start, cold (containers absent, volumes kept)", "<= 0.7", 0.7,
                   labels=("drcache start (+ready)", "baseline (no wait)"))
        self.results.append(r)
        self.bring_up_both()  # the volumes exist from here on
        self.rounds(r, lambda: timed(self.dr("-q", "start"), self.dr_env),
                    lambda: timed(self.baseline(), self.base_env()),
                    before=self.remove_containers)
        self.bring_up_both()

    def case_podman_calls(self):
        dr_env = {**self.dr_env, "DRCACHE_PODMAN": str(self.wrapper_dir / "podman")}
        base_env = self.base_env(str(self.wrapper_dir / "podman"))
        for state, limit in (("warm", 1), ("cold", None)):
            if state == "warm":
                self.bring_up_both()
            r = Result(f"podman calls, {state}", f"<= {limit}" if limit else "-", limit,
                       labels=("drcache start", "baseline"), unit="calls",
                       judge_absolute=True)
            self.results.append(r)
            if state == "cold":
                self.remove_containers()
            self.settle()
            calls = self.count_calls(self.dr("-q", "start"), dr_env)
            r.drcache.append(len(calls))
            if state == "cold":
                self.remove_containers()
            self.settle()
            base_calls = self.count_calls(self.baseline(), base_env)
            r.baseline.append(len(base_calls))
            kinds = collections.Counter(" ".join(c.split()[:2]) if c.startswith("volume")
                                        else c.split()[0] for c in calls)
            r.note = "drcache: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
            log(f"  podman calls, {state}: drcache {len(calls)}, baseline {len(base_calls)}")
        self.bring_up_both()

    def case_status(self):
        r = Result("status of five caches", "<= 3", 3.0,
                   labels=("drcache status", "podman ps -a --format json"))
        self.results.append(r)
        self.bring_up_both()
        ps = [self.real_podman, "ps", "-a", "--format", "json"]
        self.rounds(r, lambda: timed(self.dr("status"), self.dr_env),
                    lambda: timed(ps, self.env))

    def push_big_image(self):
        if self.big_pushed:
            return
        log(f"building a {BIG_LAYERS * BIG_LAYER_MIB} MiB image ({BIG_LAYERS} random layers)")
        ctx = self.tmp / "big"
        ctx.mkdir()
        lines = ["FROM scratch"]
        for i in range(BIG_LAYERS):
            with open(ctx / f"layer{i}.bin", "wb") as f:
                for _ in range(BIG_LAYER_MIB):
                    f.write(os.urandom(1 << 20))
            lines.append(f"COPY layer{i}.bin /layer{i}.bin")
        (ctx / "Containerfile").write_text("\n".join(lines) + "\n")
        self.podman("build", "--quiet", "-t", BIG_LOCAL, str(ctx))
        shutil.rmtree(ctx)
        log(f"pushing it to the upstream as {BIG_REPO}")
        self.podman("push", "--quiet", "--tls-verify=false", BIG_LOCAL,
                    f"docker://127.0.0.1:{UPSTREAM_PORT}/{BIG_REPO}")
        self.podman("rmi", BIG_LOCAL)
        self.big_pushed = True

    def upstream_blob_gets(self):
        logs = self.podman("logs", UPSTREAM)
        return sum(1 for line in (logs.stdout + logs.stderr).splitlines()
                   if '"GET /v2/bench/big/blobs/' in line)

    def case_pull(self):
        r = Result("containerd pull of ~100 MB, warm cache", "<= 1.3", 1.3,
                   labels=("via cache (hosts.toml)", "straight from upstream"))
        self.results.append(r)
        for tool in ("containerd", "ctr", "unshare"):
            if not shutil.which(tool, path=self.env["PATH"]):
                r.skipped = f"skipped: {tool} not installed"
                return
        self.push_big_image()
        self.bring_up_both()

        self.containerd_dir = self.tmp / "ctd"
        self.sock = run([str(START_CONTAINERD), str(self.containerd_dir)],
                        env=self.env).stdout.strip()
        # The hosts.toml drcache's `hosts-toml` writes (format: docs/DESIGN.md),
        # pointing at the bench's caches on loopback.
        certs = self.tmp / "certs.d"
        for i, name in enumerate(REGISTRIES):
            server = "https://registry-1.docker.io" if name == "docker.io" else f"https://{name}"
            (certs / name).mkdir(parents=True)
            (certs / name / "hosts.toml").write_text(
                f'server = "{server}"\n\n[host."http://127.0.0.1:{DR_PORT + i}"]\n'
                f'  capabilities = ["pull", "resolve"]\n')
        # containerd falls back to `server` when the mirror fails: every upstream
        # name resolves to loopback, so that fallback can never leave the machine.
        hosts = self.tmp / "hosts"
        hosts.write_text("127.0.0.1 localhost " + " ".join(UPSTREAM_HOSTS) + "\n")

        ctr = ["ctr", "--address", self.sock]
        via_ref = f"quay.io/{BIG_REPO}"
        direct_ref = f"127.0.0.1:{UPSTREAM_PORT}/{BIG_REPO}"

        def in_ns(argv):
            return ["unshare", "-m", "sh", "-c",
                    f"mount --bind {shlex.quote(str(hosts))} /etc/hosts && exec "
                    + shlex.join(argv)]

        via = in_ns([*ctr, "images", "pull", "--hosts-dir", str(certs), via_ref])
        direct = in_ns([*ctr, "images", "pull", "--plain-http", direct_ref])

        def reset():
            # Image gone and garbage-collected (content and snapshots), so each
            # pull transfers and unpacks everything again.
            for ref in (via_ref, direct_ref):
                run([*ctr, "images", "rm", "--sync", ref], env=self.env, check=False)
            left = run([*ctr, "content", "ls", "-q"], env=self.env).stdout.split()
            if left:
                raise BenchError(f"containerd still holds content after rm: {left}")

        log("warming the cache (first pull through it) and the page cache")
        reset()
        run(via, env=self.env)
        run(direct, env=self.env)
        gets_before = self.upstream_blob_gets()
        samples_via = []

        def via_side():
            before = self.upstream_blob_gets()
            t = timed(via, self.env)
            samples_via.append(self.upstream_blob_gets() - before)
            return t

        self.rounds(r, via_side, lambda: timed(direct, self.env), before=reset)
        reset()
        misses = sum(samples_via)
        r.note = (f"upstream blob GETs during the pulls via the cache: {misses} "
                  f"(0 = every blob served from the cache); before: {gets_before}")
        if misses:
            raise BenchError(f"the cache did not serve the pulls: {r.note}")

    def case_warm(self):
        r = Result("drcache warm of ~100 MB, cold cache", "<= 1.0", 1.0,
                   labels=("drcache warm", "skopeo copy via cache"))
        self.results.append(r)
        probe = subprocess.run(self.dr("warm", "--help"), env=self.dr_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if probe.returncode != 0:
            r.skipped = "skipped: drcache has no warm command"
            print(r.skipped)
            return
        if not shutil.which("skopeo", path=self.env["PATH"]):
            r.skipped = "skipped: skopeo not installed"
            return
        self.push_big_image()
        self.bring_up_both()
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.tmp
        dest = Path(tempfile.mkdtemp(prefix="drbench-skopeo.", dir=shm))

        def cold_cache():
            run(self.dr("-q", "clean", "--volumes", "quay.io"), env=self.dr_env)
            run(self.dr("-q", "start", "quay.io"), env=self.dr_env)
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()

        skopeo = ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                  f"docker://127.0.0.1:{DR_PORT}/{BIG_REPO}", f"dir:{dest}"]
        warm = self.dr("-q", "warm", f"quay.io/{BIG_REPO}")
        fetched = []  # upstream blob GETs of each run: > 0 proves the cache was cold

        def side(argv):
            def measure():
                before = self.upstream_blob_gets()
                t = timed(argv, self.dr_env if argv is warm else self.env)
                fetched.append(self.upstream_blob_gets() - before)
                return t
            return measure

        try:
            self.rounds(r, side(warm), side(skopeo), before=cold_cache)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        r.note = f"upstream blob GETs per run (each must be > 0: a cold cache): {fetched}"
        if 0 in fetched:
            raise BenchError(f"a run did not go through a cold cache: {r.note}")
