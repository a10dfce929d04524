"""The bench's environment: test-env.sh, the drcache build and config, the
podman helpers, the alternating rounds, and removing everything made."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .common import (BASE_PORT, BASE_PREFIX, BASELINE, BIG_LOCAL, DR_PORT, DR_PREFIX,
                     REGISTRIES, REPO, UPSTREAM, UPSTREAM_PORT, BenchError, log, names,
                     port_free, run, wait_ready)


def stop_pid(pid, wait_s=5.0):
    """SIGTERM, then SIGKILL when `pid` is still there after `wait_s`."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # raises once it is gone
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


class Environment:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="drbench.", dir="/var/tmp"))
        self.containerd_dir = None
        self.sock = None
        self.big_pushed = False
        self.results = []
        self.env = dict(os.environ)
        self.real_podman = None
        self.network = None  # the network case's measurements
        self.cleanups = []  # more cleanup steps, registered by cases, run last first

    # ------------------------------------------------------------ environment
    def prepare(self):
        log("preparing the test environment (scripts/test-env.sh)")
        out = run(["bash", "-c", 'eval "$(scripts/test-env.sh)" && env -0'],
                  env={**os.environ}, capture=True).stdout
        # Only what test-env.sh exports (and nothing inherited) is taken over.
        wanted = ("CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "DRCACHE_TEST_IMAGE",
                  "DRCACHE_TEST_DIR")
        exported = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
        self.env = {**os.environ, **{k: exported[k] for k in wanted}}
        self.image = self.env["DRCACHE_TEST_IMAGE"]

        if self.args.drcache:
            self.drcache = self.args.drcache.resolve()
        else:
            log("building drcache (cargo build --release)")
            run(["cargo", "build", "--release", "--quiet"], env=self.env, capture=False)
            target = Path(self.env.get("CARGO_TARGET_DIR", REPO / "target"))
            self.drcache = (target if target.is_absolute() else REPO / target) / "release/drcache"

        # drcache must see only the bench's config; its run lock goes to our temp dir.
        self.dr_env = {**self.env, "XDG_RUNTIME_DIR": str(self.tmp),
                       "XDG_CONFIG_HOME": str(self.tmp / "no-config"), "NO_COLOR": "1"}
        self.dr_env.pop("DRCACHE_CONFIG", None)
        self.dr_env.pop("DRCACHE_PODMAN", None)

        self.upstream_url = f"http://host.containers.internal:{UPSTREAM_PORT}"
        self.config = self.tmp / "drcache.toml"
        text = f'image = "{self.image}"\nprefix = "{DR_PREFIX}"\n'
        for i, name in enumerate(REGISTRIES):
            text += (f'\n[[registry]]\nname = "{name}"\nupstream = "{self.upstream_url}"\n'
                     f"port = {DR_PORT + i}\n")
        self.config.write_text(text)

        # The podman call counter: logs each call's argv, then runs the real podman.
        self.real_podman = shutil.which("podman", path=self.env["PATH"])
        if not self.real_podman:
            raise BenchError("podman not found")
        bindir = self.tmp / "bin"
        bindir.mkdir()
        self.calls_log = self.tmp / "podman-calls.log"
        wrapper = bindir / "podman"
        wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> '{self.calls_log}'\n"
                           f"exec '{self.real_podman}' \"$@\"\n")
        wrapper.chmod(0o755)
        self.wrapper_dir = bindir

        self.remove_leftovers()
        busy = [p for p in [UPSTREAM_PORT, *range(DR_PORT, DR_PORT + 5),
                            *range(BASE_PORT, BASE_PORT + 5)] if not port_free(p)]
        if busy:
            raise BenchError(f"ports in use: {busy}; the bench needs 28050-28065 free")

    def podman(self, *args, check=True):
        return run([self.real_podman, *args], env=self.env, check=check)

    def remove_leftovers(self):
        """Remove what this bench creates (exact names only): a run that was
        killed hard may have left some of it."""
        containers = [UPSTREAM, *names(DR_PREFIX), *names(BASE_PREFIX)]
        self.podman("rm", "--force", "--ignore", "--volumes", *containers, check=False)
        existing = set(self.podman("volume", "ls", "--format", "{{.Name}}",
                                   check=False).stdout.split())
        ours = [v for v in containers if v in existing]
        if ours:
            self.podman("volume", "rm", "--force", *ours, check=False)

    def cleanup(self):
        log("cleaning up")
        for step in reversed(self.cleanups):
            try:
                step()
            except Exception as e:  # one failed step must not keep the others from running
                log(f"cleanup step {getattr(step, '__name__', step)} failed: {e}")
        if self.containerd_dir:
            with contextlib.suppress(OSError, ValueError):
                stop_pid(int((self.containerd_dir / "containerd.pid").read_text()))
        if self.real_podman:
            with contextlib.suppress(Exception):
                self.remove_leftovers()
                if self.podman("image", "exists", BIG_LOCAL, check=False).returncode == 0:
                    self.podman("rmi", "--force", BIG_LOCAL, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- sides
    def dr(self, *args, config=None):
        return [str(self.drcache), "--config", str(config or self.config), *args]

    def baseline(self):
        return [str(BASELINE), BASE_PREFIX, self.image, self.upstream_url, str(BASE_PORT)]

    def base_env(self, podman=None):
        return {**self.env, "PODMAN": podman or self.real_podman}

    def start_upstream(self):
        log(f"starting the upstream registry {UPSTREAM} on :{UPSTREAM_PORT}")
        self.podman("run", "--detach", "--name", UPSTREAM, "--publish",
                    f"{UPSTREAM_PORT}:5000", "--volume", f"{UPSTREAM}:/var/lib/registry",
                    self.image)
        wait_ready([UPSTREAM_PORT])

    def bring_up_both(self):
        run(self.dr("-q", "start"), env=self.dr_env)
        run(self.baseline(), env=self.base_env())
        wait_ready(range(BASE_PORT, BASE_PORT + 5))

    def remove_containers(self):
        self.podman("rm", "--force", "--ignore", *names(DR_PREFIX), *names(BASE_PREFIX))

    def settle(self):
        time.sleep(self.args.settle)

    def rounds(self, result, side_a, side_b, before=None):
        """Run the two sides alternately; `before` resets the state each time."""
        for i in range(self.args.runs):
            order = [(result.drcache, side_a), (result.baseline, side_b)]
            if i % 2:
                order.reverse()
            for samples, side in order:
                if before:
                    before()
                self.settle()
                samples.append(side())
            log(f"  {result.case} round {i + 1}/{self.args.runs}: "
                f"{result.labels[0]} {result.drcache[-1]:.3f}s, "
                f"{result.labels[1]} {result.baseline[-1]:.3f}s")

    def count_calls(self, argv, env):
        self.calls_log.write_text("")
        env = {**env, "PATH": f"{self.wrapper_dir}:{env['PATH']}"}
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        return self.calls_log.read_text().splitlines()
