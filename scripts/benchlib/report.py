"""The report: the machine, the table on stdout, the block in BENCHMARKS.md."""

import datetime
import os
import platform
import statistics
import subprocess
from pathlib import Path

from .common import REPO, log, run


class Report:
    def machine(self):
        def first(cmd):
            p = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
            return (p.stdout or p.stderr).strip().splitlines()[0] if p.returncode == 0 else "?"
        meminfo = Path("/proc/meminfo").read_text()
        mem_kib = int(next(l for l in meminfo.splitlines() if l.startswith("MemTotal")).split()[1])
        cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text()
                    .splitlines() if l.startswith("model name")), platform.machine())
        code = ["src", "Cargo.toml", "Cargo.lock"]
        commit = first(["git", "-C", str(REPO), "log", "-1", "--format=%h %s", "--", *code])
        if run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", *code],
               check=False).returncode:
            commit += " (plus uncommitted changes)"
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": f"{len(os.sched_getaffinity(0))} (nproc), {cpu}",
            "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
            "kernel": f"{platform.system()} {platform.release()}",
            "os": first(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "podman": first([self.real_podman, "version", "--format", "{{.Client.Version}}"]),
            "containerd": first(["containerd", "--version"]).split()[-1],
            "registry image": f"{self.image} (Debian docker-registry "
                              f"{first(['dpkg-query', '-W', '-f', '${Version}', 'docker-registry'])})",
            "drcache (last commit to its code)": commit,
            "runs": f"{self.args.runs} per side, interleaved",
            "load average at start/end": f"{self.load_start} / "
                                         f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        }

    @staticmethod
    def fmt(values, unit):
        if not values:
            return "-"
        if unit == "calls":
            return "/".join(str(v) for v in (min(values), statistics.median(values), max(values)))
        return "/".join(f"{v:.3f}" for v in (min(values), statistics.median(values), max(values)))

    def rows(self):
        header = ["case", "side", "min/median/max", "ratio", "paired ratios", "target", "result"]
        rows = []
        for r in self.results:
            if r.skipped:
                rows.append([r.case, r.skipped, "", "", "", r.target, "-"])
                continue
            ratio = r.ratio()
            paired = r.paired()
            unit = " calls" if r.unit == "calls" else " s"
            rows.append([r.case, r.labels[0], self.fmt(r.drcache, r.unit) + unit,
                         f"{ratio:.2f}" if ratio is not None else "-",
                         "/".join(f"{x:.2f}" for x in (min(paired), statistics.median(paired),
                                                       max(paired))) if paired else "-",
                         r.target, r.verdict()])
            rows.append(["", r.labels[1], self.fmt(r.baseline, r.unit) + unit,
                         "", "", "", ""])
        return header, rows

    def print_table(self):
        header, rows = self.rows()
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
        if self.results:
            print(line(header))
            print(line(["-" * w for w in widths]))
            for row in rows:
                print(line(row))
        for r in self.results:
            if r.note:
                print(f"note ({r.case}): {r.note}")
        for text in self.network_section():
            print(text)

    def write_markdown(self, path):
        header, rows = self.rows()
        md = ["<!-- bench:begin (written by scripts/bench; edit outside the markers) -->",
              "## Last run", "", "Machine:", ""]
        md += [f"- {k}: {v}" for k, v in self.machine().items()]
        md += ["", "Times in seconds (podman calls in calls), min/median/max per side. "
               "`ratio` = median(drcache side) / median(other side), which the target "
               "judges (for the podman calls, drcache's own count is judged); "
               "`paired ratios` = min/median/max of the per-round ratios.", ""]
        if self.results:
            md.append("| " + " | ".join(header) + " |")
            md.append("|" + "---|" * len(header))
            md += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        notes = [f"- {r.case}: {r.note}" for r in self.results if r.note]
        if notes:
            md += ["", "Notes:", ""] + notes
        md += self.network_section()
        md.append("<!-- bench:end -->")
        block = "\n".join(md) + "\n"
        old = path.read_text() if path.exists() else "# Benchmarks\n\n"
        begin, end = old.find("<!-- bench:begin"), old.find("<!-- bench:end -->")
        if begin >= 0 and end > begin:
            new = old[:begin] + block + old[end + len("<!-- bench:end -->\n"):]
        else:
            new = old.rstrip("\n") + "\n\n" + block
        path.write_text(new)
        log(f"wrote {path}")
