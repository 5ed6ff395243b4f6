#!/usr/bin/env python3
"""The script a platform team would write instead of argomap: list Argo CD's clusters and
applications (requests + json), attribute every application to a destination as argomap does
(URLs normalised, names resolved through the cluster list), print counts as JSON.

    argocd_destinations.py --url URL --token-file FILE
"""

import argparse
import json
import sys
from collections import Counter
from urllib.parse import urlsplit

import requests

DEFAULT_PORTS = {"https": 443, "http": 80}


def normalize(raw: str) -> str:
    s = raw.strip()
    try:
        u = urlsplit(s)
        port = u.port
    except ValueError:
        return s.rstrip("/")
    if not u.scheme or not u.hostname:
        return s.rstrip("/")
    scheme = u.scheme.lower()
    host = u.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    out = f"{scheme}://{host}"
    if port is not None and DEFAULT_PORTS.get(scheme) != port:
        out += f":{port}"
    out += u.path.rstrip("/")
    if u.query:
        out += "?" + u.query
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True)
    a = p.parse_args()
    with open(a.token_file) as f:
        token = f.read().strip()
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    base = a.url.rstrip("/")
    clusters = s.get(f"{base}/api/v1/clusters", timeout=300).json().get("items") or []
    fields = "items.metadata.name,items.metadata.namespace,items.spec.destination"
    apps = s.get(f"{base}/api/v1/applications", params={"fields": fields}, timeout=300).json().get("items") or []

    listed = {}
    by_name = {}
    for c in clusters:
        server = (c.get("server") or "").strip()
        if not server:
            continue
        url = normalize(server)
        listed[url] = c.get("name") or None
        name = (c.get("name") or "").strip()
        if name:
            by_name.setdefault(name, set()).add(url)

    counts = Counter()
    unresolved = 0
    for app in apps:
        dest = (app.get("spec") or {}).get("destination") or {}
        server = (dest.get("server") or "").strip()
        name = (dest.get("name") or "").strip()
        if server and not name:
            counts[normalize(server)] += 1
        elif name and not server and len(by_name.get(name, ())) == 1:
            counts[next(iter(by_name[name]))] += 1
        else:
            unresolved += 1

    destinations = sorted(set(listed) | set(counts))
    json.dump(
        {
            "applications": len(apps),
            "unresolved": unresolved,
            "destinations": [{"url": u, "name": listed.get(u), "applications": counts[u]} for u in destinations],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
