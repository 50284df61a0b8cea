"""Serving speed: the registered model behind MLflow's scoring server against the
`Recommender` called in-process, one user per request, at concurrency 1 and 8.

    python bench/serve_latency.py [--users 400] [--k 10] [--out bench/results/serve_latency.json]

Run after `make run` (it serves `models:/mmgenrec/latest` from sqlite:///mlflow.db, exactly
what `make serve-model` serves). Requests are the test users' histories from
`<paths.ingest>/sequences.parquet`, the same users for every row; each row reports users/s and
the p50 / p99 latency of one request. The in-process rows call `Recommender.recommend` from
threads of this process (the model shares the CPU threads torch is given).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_params  # noqa: E402
from pipeline.io import tables  # noqa: E402
from pipeline.serve.recommender import Recommender  # noqa: E402

CONCURRENCY = (1, 8)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, history: list[int], k: int) -> list[int]:
    body = json.dumps({"dataframe_records": [{"history": history}], "params": {"k": k}})
    request = urllib.request.Request(url, data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["predictions"][0]["items"]


def _measure(call, histories: list[list[int]], workers: int) -> dict[str, float]:
    """users/s over all requests and the p50 / p99 of one request's latency, in ms."""
    def timed(history):
        start = time.perf_counter()
        call(history)
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        latencies = sorted(pool.map(timed, histories))
    wall = time.perf_counter() - start
    return {"users_per_s": round(len(histories) / wall, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1,
                                                  int(0.99 * len(latencies)))], 1)}


def _start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{ROOT / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["mlflow", "models", "serve", "-m", "models:/mmgenrec/latest",
                             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the scoring server did not start: is a model registered "
                             "(make run)?")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return proc
        except OSError:
            time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serve_latency.json")
    args = parser.parse_args()

    params = load_params(ROOT / "params.yaml")
    seqs = tables.read_table(ROOT / params.paths.ingest / "sequences.parquet", tables.SEQUENCES)
    histories = seqs.column("test_history").to_pylist()[:args.users]
    recommender = Recommender(ROOT / params.paths.model,
                              ROOT / params.paths.ingest / "items.parquet", "cpu",
                              params.evaluate.beam, params.evaluate.fusion)
    rows = []
    for workers in CONCURRENCY:
        rows.append({"path": "in-process Recommender.recommend", "concurrency": workers,
                     **_measure(lambda h: recommender.recommend(h, args.k), histories, workers)})
        print(rows[-1], flush=True)

    port = _free_port()
    server = _start_server(port)
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        first = histories[0]
        same = _post(url, first, args.k) == [r.item_id for r in recommender.recommend(first,
                                                                                     args.k)]
        for workers in CONCURRENCY:
            rows.append({"path": "REST (mlflow models serve, 1 worker)", "concurrency": workers,
                         **_measure(lambda h: _post(url, h, args.k), histories, workers)})
            print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    result = {"date": date.today().isoformat(), "commit": commit, "users": len(histories),
              "k": args.k, "beam": params.evaluate.beam, "rest_answers_like_in_process": same,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
                         f"{__import__('torch').get_num_threads()}", "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
