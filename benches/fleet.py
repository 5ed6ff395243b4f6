#!/usr/bin/env python3
"""Generates a fleet for the benchmarks: a seed for tests/fake-argocd (clusters and
applications), reproducible from --seed.

    python3 benches/fleet.py --destinations 2000 --apps 100000 --by-name 0.2 --odd 0.05 > seed.json

--by-name: share of applications naming their destination (spec.destination.name) instead of
its URL. --odd: share of URL-addressed applications whose URL carries a trailing slash (Argo CD
itself reads it as the listed cluster). --odd-case: share written with an upper-case host or
scheme, which argomap attributes to the listed cluster but Argo CD does not (so argomap asks
can-i whether the cluster list is complete: a third request per check). --unlisted: share of
applications aimed at a URL Argo CD's cluster list does not have.
"""

import argparse
import json
import random
import sys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--destinations", type=int, default=2000, help="clusters in Argo CD's list")
    p.add_argument("--apps", type=int, default=100_000, help="applications")
    p.add_argument("--by-name", type=float, default=0.2, help="share of applications by cluster name")
    p.add_argument("--odd", type=float, default=0.05, help="share of URLs with a trailing slash")
    p.add_argument("--odd-case", type=float, default=0.0, help="share of URLs in other letter case")
    p.add_argument("--unlisted", type=float, default=0.0, help="share aimed at unlisted URLs")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    a = p.parse_args()
    rng = random.Random(a.seed)

    clusters = [
        {"server": f"https://c{i:05d}.k8s.example.com:6443", "name": f"cluster-{i:05d}"}
        for i in range(a.destinations)
    ]

    def other_case(url: str) -> str:
        if rng.randrange(2):
            return url.replace("https://c", "https://C", 1).replace(".example.com", ".EXAMPLE.com")
        return url.replace("https://", "HTTPS://", 1)

    apps = []
    for i in range(a.apps):
        app = {"name": f"app-{i:07d}", "namespace": "argocd", "destNamespace": "apps"}
        c = clusters[rng.randrange(len(clusters))] if clusters else None
        r = rng.random()
        if c is None or r < a.unlisted:
            app["destServer"] = f"https://unlisted-{rng.randrange(1000):04d}.example.org"
        elif r < a.unlisted + a.by_name:
            app["destName"] = c["name"]
        else:
            url, odd = c["server"], rng.random()
            if odd < a.odd:
                url += "/"
            elif odd < a.odd + a.odd_case:
                url = other_case(url)
            app["destServer"] = url
        apps.append(app)

    json.dump({"version": "v3.6.1", "account": "argomap", "clusters": clusters, "applications": apps}, sys.stdout)


if __name__ == "__main__":
    main()
