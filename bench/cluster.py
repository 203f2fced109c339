#!/usr/bin/env python3
"""Patient reads and record uploads per second through HAProxy with one, two and three careport
nodes (issue #20), on the cluster of the tests (.ci/cluster.py: PostgreSQL and Redis of its
own, moto for S3, HAProxy checking /readyz), release binary, embedding model off, logs at warn.

Reads: wrk, 2 threads, 64 connections, `GET /api/v1/patients/{id}` as a doctor rotating over
their assigned patients (bench/patients.lua): authorized by the policies and audited, each.
Uploads: wrk, 2 threads, 16 connections, 16 KiB files, each different (bench/upload.lua):
sealed into S3, one transaction each, audited.

Every node, HAProxy, PostgreSQL, Redis, moto and wrk share this machine's cores: more nodes
cannot mean more throughput here, and the figures are what one machine shows, not a cluster's
capacity.

    python3 bench/cluster.py [--seconds 15] [--binary target/release/careport]
"""
import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("cluster", os.path.join(ROOT, ".ci", "cluster.py"))
cluster = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cluster)


def wrk(script, seconds, connections, env):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, f"http://127.0.0.1:{cluster.LB_PORT}"],
        capture_output=True, text=True, env=dict(os.environ, **env),
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {"rps": rps, "requests": total, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else None, "p50": lat.get("50"), "p99": lat.get("99")}


def serving(c, n):
    """Until HAProxy sends to exactly the first `n` nodes."""
    want = {f"node{i + 1}" for i in range(n)}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            seen = {c.who(c.lb) for _ in range(12)}
        except Exception:
            seen = set()
        if seen == want:
            return
        time.sleep(0.3)
    raise SystemExit(f"HAProxy did not settle on {sorted(want)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "/var/cache/careport-target"),
                                                     "release", "careport"))
    args = ap.parse_args()
    args.model_dir = "/nonexistent"
    subprocess.run(["bash", os.path.join(ROOT, ".ci", "start-s3.sh")], check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="careport-bench-cluster-")
    os.chmod(work, 0o755)
    run = cluster.Run(args, work)
    run.env.update(CAREPORT__ML__EMBEDDING_PROVIDER="off", CAREPORT__LOG__LEVEL="warn")
    run.env.pop("CAREPORT__ML__LOCAL__MODEL_DIR", None)
    run.pg, run.redis, run.lb = cluster.Postgres(work), cluster.RedisServer(work), cluster.Balancer(work)
    rows = []
    try:
        run.pg.start()
        run.redis.start()
        run.lb.start()
        c = cluster.Cluster(run, "bench")
        run.clusters.append(c)
        c.up(clinicians=20, patients=args.patients)
        token = c.token("clinician doctor")
        ids, cursor = [], None
        while True:
            page = cluster.jget(c.lb, "/api/v1/patients?limit=200" + (f"&cursor={cursor}" if cursor else ""), token)
            ids += [p["id"] for p in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        patient = cluster.jpost(c.lb, "/api/v1/patients", token, {"full_name": "Bench Upload Patient"}, 201)["id"]
        ids_file = os.path.join(work, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(ids) + "\n")
        env = {"BENCH_TOKEN": token, "BENCH_IDS": ids_file, "BENCH_PATIENT": patient}
        for n in (3, 2, 1):
            for node in c.nodes[n:]:
                node.stop()
            serving(c, n)
            reads = wrk(os.path.join(ROOT, "bench", "patients.lua"), args.seconds, 64, env)
            uploads = wrk(os.path.join(ROOT, "bench", "upload.lua"), args.seconds, 16, env)
            rows.append((n, reads, uploads))
            print(f"{n} node(s): reads {json.dumps(reads)}; uploads {json.dumps(uploads)}", flush=True)
        print(f"(doctor with {len(ids)} assigned patients of {args.patients}; {os.cpu_count()} cores shared by all)")
    finally:
        for c in run.clusters:
            c.down()
        run.lb.stop()
        run.redis.stop()
        run.pg.stop("immediate")
    print("\n| nodes | patient reads/s (p50, p99) | uploads/s (p50, p99) |\n|---|---|---|")
    for n, r, u in sorted(rows):
        print(f"| {n} | {r['rps']:,.0f} ({r['p50']}, {r['p99']}), {r['non_2xx']} non-2xx | "
              f"{u['rps']:,.0f} ({u['p50']}, {u['p99']}), {u['non_2xx']} non-2xx |")
    bad = [r for _, r, u in rows for r in (r, u) if r["non_2xx"] or r["socket_errors"]]
    if bad:
        sys.exit(f"errors during the benchmark: {bad}")


if __name__ == "__main__":
    main()
