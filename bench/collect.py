"""The survey server under load: 50 concurrent respondents, 10,000 submissions.

Starts `culture collect` as its own process on 127.0.0.1 (a fresh store with the
sample sites), then 50 client threads each repeat: fetch the form (as a browser
does; not timed), post a full set of answers (timed), until 10,000 submissions are
acknowledged. Prints throughput (acknowledged submissions per second of wall time),
p50 / p99 latency of the posts, and acknowledged vs stored counts read back from the
inbox after the server has stopped (goal: >= 300/s, p99 < 200 ms, lost 0,
duplicated 0). A baseline in the same process: the same posts one at a time by one
client, so the ratio shows what concurrency and group commit buy.

    .venv/bin/python bench/collect.py [--submissions 10000] [--clients 50]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from common import ROOT  # (adds the project to sys.path)

from pipeline.store import load_sites_csv, add_wave, open_store  # noqa: E402
from survey.instrument import load_instrument  # noqa: E402
from survey.settings import DEFAULT_INSTRUMENT, SAMPLES_DIR  # noqa: E402

TOKEN = re.compile(r"name='form_token' value='([^']+)'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db: Path, port: int) -> subprocess.Popen:
    culture = Path(sys.executable).with_name("culture")
    process = subprocess.Popen([str(culture), "collect", "--db", str(db), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(process.stderr.read().decode()[-2000:])


def answers(instrument, rng: random.Random) -> dict[str, str]:
    row = {}
    for item in instrument.items:
        codes = instrument.response_scale(item.response_scale).codes
        row[item.id] = str(rng.choice(codes))
    row["staff_group"] = rng.choice(["consultant", "resident", "sas", ""])
    row["duration_seconds"] = str(rng.randint(120, 900))
    return row


def submit_one(port: int, path: str, fields: dict[str, str]) -> tuple[str, float, int]:
    """Fetch the form, post the answers; (form token, seconds the post took, status)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        page = connection.getresponse().read().decode()
    finally:
        connection.close()
    token = TOKEN.search(page).group(1)
    body = urlencode(fields | {"form_token": token})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    try:
        connection.request("POST", path, body, {"Content-Type":
                                                "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        return token, time.perf_counter() - started, response.status
    finally:
        connection.close()


def drive(port: int, instrument, total: int, clients: int, seed: int = 1):
    """Run `clients` threads until `total` posts are acknowledged; returns
    (acknowledged submission ids, latencies, wall seconds, refused count)."""
    acknowledged, latencies, refused = [], [], [0]
    lock = threading.Lock()
    remaining = [total]

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            fields = answers(instrument, rng)
            token, seconds, status = submit_one(port, "/s/A/2026", fields)
            with lock:
                if status == 200:
                    acknowledged.append(token.split(".")[0])
                    latencies.append(seconds)
                else:
                    refused[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acknowledged, np.array(latencies), time.perf_counter() - started, refused[0]


def stored_ids(inbox: Path) -> list[str]:
    with sqlite3.connect(str(inbox)) as con:
        return [r[0] for r in con.execute("select submission_id from submissions")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024 ** 3:.0f} GB")
    instrument = load_instrument(DEFAULT_INSTRUMENT)
    folder = Path(tempfile.mkdtemp(prefix="culture-collect-bench-"))
    db = folder / "survey.duckdb"
    with open_store(db) as con:
        load_sites_csv(con, SAMPLES_DIR / "sites.csv")
        add_wave(con, 2026)
    port = free_port()
    server = start_server(db, port)
    try:
        baseline_ids, baseline, baseline_wall, _ = drive(port, instrument, 200, 1, seed=99)
        acked, latencies, wall, refused = drive(port, instrument, args.submissions,
                                                args.clients)
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = stored_ids(folder / "survey.inbox.sqlite")
    expected = set(acked) | set(baseline_ids)
    lost = len(expected - set(stored))
    duplicated = len(stored) - len(set(stored))
    rate = len(acked) / wall
    p50, p99 = np.percentile(latencies, 50) * 1000, np.percentile(latencies, 99) * 1000
    print(f"{len(acked):,} acknowledged submissions from {args.clients} clients in {wall:.1f} s: "
          f"{rate:.0f}/s (goal >= 300); post latency p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(goal < 200); refused {refused}")
    print(f"acknowledged {len(expected):,}, stored {len(stored):,}, lost {lost}, "
          f"duplicated {duplicated} (goal: 0 and 0)")
    one_rate = len(baseline_ids) / baseline_wall
    print(f"baseline, one client one at a time: {one_rate:.0f}/s, post p50 "
          f"{np.percentile(baseline, 50) * 1000:.1f} ms; {args.clients} clients: "
          f"{rate / one_rate:.1f}x the throughput")


if __name__ == "__main__":
    main()
