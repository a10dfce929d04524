#!/usr/bin/env python3
"""Usage: mutants-summary.py OUT MINUTES RC VERSION COMMIT FILE...

For scripts/mutants: merge the outcomes of the run in OUT/mutants.out into
docs/mutants.json (the latest outcome of every mutant any run reached; kept in
the repository so that runs on different machines add up), then write the
score per file and the surviving mutants into docs/testing.md, between the
mutants:begin and mutants:end markers. A file's "carried" entry holds counts
of runs whose per-mutant outcomes were not kept; any new run of the file
replaces it.
"""
import collections
import json
import os
import re
import sys

out, minutes, rc, version, commit, *files = sys.argv[1:]
store_path = "docs/mutants.json"
if os.path.exists(store_path):
    store = json.load(open(store_path))
else:
    store = {"mutants": {}, "runs": [], "carried": {}}
run = json.load(open(f"{out}/mutants.out/outcomes.json"))
seconds = []
tested = [o for o in run["outcomes"] if o["scenario"] != "Baseline"]
this_run = collections.Counter(o["scenario"]["Mutant"]["file"] for o in tested)
stored = collections.Counter(v["file"] for v in store["mutants"].values())
# A run that tested at least as many of a file's mutants as are stored is a
# whole run of it: it replaces the older outcomes, whose line numbers may no
# longer exist. A smaller one (--iterate, a budget) adds to them.
whole = {f for f, n in this_run.items() if n >= stored[f]}
store["mutants"] = {k: v for k, v in store["mutants"].items() if v["file"] not in whole}
for o in tested:
    m = o["scenario"]["Mutant"]
    store["carried"].pop(m["file"], None)
    store["mutants"][m["name"]] = {"file": m["file"], "summary": o["summary"]}
    seconds.append(sum(p["duration"] for p in o["phase_results"]))
store["runs"].append({
    "commit": commit,
    "files": files,
    "minutes": int(minutes),
    "tested": len(seconds),
    "mean_seconds": round(sum(seconds) / len(seconds), 1) if seconds else None,
    # timeout(1) exits 124; cargo-mutants interrupted by SIGINT, 130.
    "stopped_by_budget": rc in ("124", "130"),
})
json.dump(store, open(store_path, "w"), indent=1, sort_keys=True)

per_file = collections.defaultdict(collections.Counter)
survivors = []
for f, c in store["carried"].items():
    per_file[f].update({k: v for k, v in c.items() if k != "survivors"})
    survivors += [f"- `{where}`: {what}" for where, _, what in
                  (s.partition(": ") for s in c["survivors"])]
for name, r in sorted(store["mutants"].items()):
    per_file[r["file"]][r["summary"]] += 1
    if r["summary"] == "MissedMutant":
        where, _, what = name.partition(": ")
        survivors.append(f"- `{where}`: {what}")


def score(c):
    viable = c["CaughtMutant"] + c["MissedMutant"] + c["Timeout"]
    caught = c["CaughtMutant"] + c["Timeout"]
    return viable, (f"{100 * caught / viable:.1f} %" if viable else "-")


def row(label, c):
    viable, sc = score(c)
    return (f"| {label} | {viable} | {c['CaughtMutant']} | {c['Timeout']} "
            f"| {c['MissedMutant']} | {c['Unviable']} | {sc} |")


total = collections.Counter()
rows = []
for f in sorted(per_file):
    total.update(per_file[f])
    rows.append(row(f"`{f}`", per_file[f]))
runs = [
    f"- {r['commit']}: {', '.join(f.removeprefix('src/') for f in r['files'])}: "
    f"{r['tested']} mutants in {r['minutes']} min "
    f"({r['mean_seconds']} s each to build and test)"
    + (", stopped by the time budget" if r["stopped_by_budget"] else "")
    for r in store["runs"]
]
text = [
    "<!-- mutants:begin (written by scripts/mutants) -->",
    f"Runs ({version}; the latest outcome of each mutant counts):",
    "",
    *runs,
    "",
    "| file | viable | caught | timeout | missed | unviable | score |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    *rows,
    row("all", total),
    "",
    "Surviving mutants:" if survivors else "No surviving mutants.",
    "",
    *survivors,
    "<!-- mutants:end -->",
]
doc = "docs/testing.md"
content = open(doc).read()
block = "\n".join(text)
if "<!-- mutants:begin" in content:
    content = re.sub(r"<!-- mutants:begin.*?<!-- mutants:end -->",
                     lambda _: block, content, flags=re.S)
else:
    content = content.rstrip("\n") + "\n\n## Mutation testing\n\n" + block + "\n"
open(doc, "w").write(content)
print("\n".join(text[1:-1]))
