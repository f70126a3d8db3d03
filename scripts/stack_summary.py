#!/usr/bin/env python3
"""What the local stack did, read from each part itself (stdlib only).

    scripts/stack_summary.py [--wait-idle SECS] [--json FILE]

--wait-idle: first wait (at most SECS) until the host has caught up: its
record count unchanged for 3 s and no event waiting for content.

Reads PostgreSQL (psql), Redis (redis-cli), the BigQuery emulator (REST
jobs.query on the current-version view), api-sim (GET /stats), the host's
/metrics (records, dead letters, end-to-end latency summary) and the
dead-letter file. Ports as in scripts/stack.sh.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_PORT = os.environ.get("PG_PORT", "5433")
REDIS_PORT = os.environ.get("STACK_REDIS_PORT", "6380")
BQ_PORT = os.environ.get("BIGQUERY_PORT", "9050")
API_PORT = os.environ.get("API_SIM_PORT", "8080")
ADMIN_PORT = os.environ.get("ADMIN_PORT", "9100")
PROJECT = "streaming-project"
DEAD_LETTERS = os.path.join(ROOT, ".state/stack/dead-letters.ndjson")


def http_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def metrics():
    """Prometheus text -> {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$', line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def metric_sum(ms, name, **labels):
    total = 0.0
    for (n, lab), v in ms.items():
        if n == name and all(f'{k}="{val}"' in lab for k, val in labels.items()):
            total += v
    return total


def psql(sql):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", PG_PORT, "-U", "debezium", "-d", "users_data", "-At", "-c", sql],
        check=True, capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "dbz"},
    ).stdout
    return out.strip()


def redis_keys():
    out = subprocess.run(
        ["redis-cli", "-p", REDIS_PORT, "--scan", "--pattern", "eng:*"],
        check=True, capture_output=True, text=True,
    ).stdout
    return len([k for k in out.splitlines() if k])


def bigquery_current_rows():
    answer = http_json(
        f"http://127.0.0.1:{BQ_PORT}/bigquery/v2/projects/{PROJECT}/queries",
        {"query": "SELECT COUNT(*) FROM `engagement_analytics.enriched_events_current`", "useLegacySql": False},
    )
    if answer.get("errors"):
        raise RuntimeError(answer["errors"])
    return int(answer["rows"][0]["f"][0]["v"])


def wait_idle(limit):
    deadline = time.time() + limit
    last, stable_since = None, time.time()
    while time.time() < deadline:
        ms = metrics()
        records = metric_sum(ms, "engagement_sink_records_total")
        pending = metric_sum(ms, "engagement_pending_events")
        if records != last:
            last, stable_since = records, time.time()
        elif pending == 0 and time.time() - stable_since >= 3:
            return True
        time.sleep(0.5)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wait-idle", type=float, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.wait_idle and not wait_idle(args.wait_idle):
        print(f"[summary] the host was still busy after {args.wait_idle:.0f} s", file=sys.stderr)

    ms = metrics()
    live, total_content = psql(
        "SELECT (SELECT count(*) FROM engagement_events) || ' ' || (SELECT count(*) FROM content)"
    ).split()
    stats = http_json(f"http://127.0.0.1:{API_PORT}/stats")
    dead_file = 0
    if os.path.exists(DEAD_LETTERS):
        with open(DEAD_LETTERS) as f:
            dead_file = sum(1 for line in f if line.strip())
    q = lambda q: ms.get(("engagement_end_to_end_seconds", f'{{sink="redis",quantile="{q}"}}'))
    summary = {
        "postgres_engagement_rows": int(live),
        "postgres_content_rows": int(total_content),
        "events_enriched": int(metric_sum(ms, "engagement_enrichment_total", result="ok")),
        "records_written_redis": int(metric_sum(ms, "engagement_sink_records_total", sink="redis")),
        "redis_keys": redis_keys(),
        "bigquery_current_rows": bigquery_current_rows(),
        "api_events": stats.get("events", 0),
        "api_duplicate_batches": stats.get("duplicate_batches", 0),
        "dead_letters": int(metric_sum(ms, "engagement_dead_letters_total")),
        "dead_letter_file_lines": dead_file,
        "latency_redis_p50_ms": None if q("0.5") is None else round(q("0.5") * 1000, 1),
        "latency_redis_p99_ms": None if q("0.99") is None else round(q("0.99") * 1000, 1),
    }
    rows = [
        ("PostgreSQL engagement rows (live)", summary["postgres_engagement_rows"]),
        ("PostgreSQL content rows", summary["postgres_content_rows"]),
        ("events enriched by the host", summary["events_enriched"]),
        ("records written to Redis", summary["records_written_redis"]),
        ("Redis keys eng:*", summary["redis_keys"]),
        ("BigQuery rows (current view)", summary["bigquery_current_rows"]),
        ("API events received (/stats)", summary["api_events"]),
        ("API duplicate batches", summary["api_duplicate_batches"]),
        ("dead letters", summary["dead_letters"]),
        ("end-to-end latency p50 (commit -> Redis)", f'{summary["latency_redis_p50_ms"]} ms'),
        ("end-to-end latency p99 (commit -> Redis)", f'{summary["latency_redis_p99_ms"]} ms'),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
