#!/usr/bin/env python3
"""argomap beside the Python peer on the same generated fleet: `make bench-compare`.

Generates a fleet (benches/fleet.py), serves it with the fake Argo CD (release build; gzip
when asked, as Argo CD does), then runs `argomap check -o json` and the peer
(benches/peers/argocd_destinations.py) in turn, --runs times each after one untimed warm-up
of each, every run under /usr/bin/time -v. Prints the medians of CPU (user + system) and
peak RSS, and the ratios. Both must agree on the counts, or the run fails.

With --goal, exits non-zero unless argomap meets the issue's bounds (CPU and peak RSS) and
ratios.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, out_path):
    """Runs cmd under /usr/bin/time -v; returns (cpu seconds, peak MiB, wall seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t, open(out_path, "w") as out:
        start = time.monotonic()
        rc = subprocess.call(["/usr/bin/time", "-v", "-o", t.name, *cmd], stdout=out, stderr=subprocess.PIPE)
        wall = time.monotonic() - start
        text = t.read()
    if rc != 0:
        sys.exit(f"{cmd[0]} exited {rc}; its output is in {out_path}")
    v = {}
    for line in text.splitlines():
        k, _, val = line.strip().partition(": ")
        v[k] = val
    cpu = float(v["User time (seconds)"]) + float(v["System time (seconds)"])
    rss = int(v["Maximum resident set size (kbytes)"]) / 1024
    return cpu, rss, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--destinations", type=int, default=2000)
    p.add_argument("--apps", type=int, default=100_000)
    p.add_argument("--by-name", type=float, default=0.2)
    p.add_argument("--odd", type=float, default=0.05)
    p.add_argument("--odd-case", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--python", default=sys.executable, help="the peer's interpreter (its venv)")
    p.add_argument("--goal", action="store_true", help="fail unless the issue's bounds are met")
    a = p.parse_args()

    argomap = os.path.join(ROOT, "target/release/argomap")
    fake = os.path.join(ROOT, "target/release/fake-argocd")
    peer = os.path.join(ROOT, "benches/peers/argocd_destinations.py")
    work = tempfile.mkdtemp(prefix="argomap-bench-")
    seed = os.path.join(work, "seed.json")
    with open(seed, "w") as f:
        subprocess.check_call(
            [sys.executable, os.path.join(ROOT, "benches/fleet.py"), "--destinations", str(a.destinations),
             "--apps", str(a.apps), "--by-name", str(a.by_name), "--odd", str(a.odd), "--odd-case", str(a.odd_case), "--seed", str(a.seed)],
            stdout=f,
        )
    url_file, token_file = os.path.join(work, "url"), os.path.join(work, "token")
    server = subprocess.Popen([fake, "--seed", seed, "--url-file", url_file, "--token-file", token_file],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "fake.log"), "w"))
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(url_file) and os.path.getsize(url_file)):
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit(f"fake-argocd did not start; see {work}/fake.log")
            time.sleep(0.1)
        url = open(url_file).read().strip()
        runners = {
            "argomap": [argomap, "check", "--url", url, "--token-file", token_file, "--timeout", "5m", "-o", "json"],
            "python": [a.python, peer, "--url", url, "--token-file", token_file],
        }
        outs = {k: os.path.join(work, f"{k}.json") for k in runners}
        samples = {k: [] for k in runners}
        for k, cmd in runners.items():
            timed(cmd, outs[k])  # warm-up: page cache, the server's first render
        for _ in range(a.runs):
            for k, cmd in runners.items():
                samples[k].append(timed(cmd, outs[k]))
        check_agreement(outs, a.apps)
    finally:
        server.terminate()
        server.wait()

    med = {k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v),
               statistics.median(s[2] for s in v)) for k, v in samples.items()}
    print(f"fleet: {a.apps} applications over {a.destinations} destinations, {a.by_name:.0%} by name, "
          f"{a.odd:.0%} URLs with a trailing slash, {a.odd_case:.0%} in other case, seed {a.seed}; medians of {a.runs} runs taken in turn")
    print("| | cpu s | peak MiB | wall s |")
    print("| --- | --- | --- | --- |")
    print(f"| `argomap check -o json` | {med['argomap'][0]:.3f} | {med['argomap'][1]:.1f} | {med['argomap'][2]:.2f} |")
    print(f"| Python requests + json | {med['python'][0]:.3f} | {med['python'][1]:.1f} | {med['python'][2]:.2f} |")
    cpu_ratio = med["python"][0] / max(med["argomap"][0], 1e-9)
    rss_ratio = med["python"][1] / med["argomap"][1]
    print(f"ratio: {cpu_ratio:.1f}x cheaper in CPU, {rss_ratio:.1f}x in peak memory")
    for k, v in samples.items():
        print(f"{k} runs: " + ", ".join(f"{c:.3f} s/{r:.1f} MiB" for c, r, _ in v))
    if a.goal:
        missed = []
        if med["argomap"][0] > 0.12:
            missed.append(f"CPU {med['argomap'][0]:.3f} s > 0.12 s")
        if med["argomap"][1] > 32:
            missed.append(f"peak {med['argomap'][1]:.1f} MiB > 32 MiB")
        if cpu_ratio < 20:
            missed.append(f"CPU ratio {cpu_ratio:.1f} < 20")
        if rss_ratio < 5:
            missed.append(f"memory ratio {rss_ratio:.1f} < 5")
        if missed:
            sys.exit("goal missed: " + "; ".join(missed))
        print("goal met: <= 0.12 s CPU, <= 32 MiB, >= 20x and >= 5x")


def check_agreement(outs, apps):
    """Both counted every application and resolved the same ones to the same destinations."""
    status = json.load(open(outs["argomap"]))["status"]
    peer = json.load(open(outs["python"]))
    s = status["summary"]
    ours = (s["applications"], s["unresolvedApplications"], s["linkedClusters"] + s["unlinkedClusters"])
    theirs = (peer["applications"], peer["unresolved"], len(peer["destinations"]))
    if ours != theirs or ours[0] != apps:
        sys.exit(f"argomap and the peer disagree (applications, unresolved, destinations): {ours} vs {theirs}")


if __name__ == "__main__":
    main()
