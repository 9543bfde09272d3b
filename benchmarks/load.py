"""python -m benchmarks.load [--clients 20] [--requests 200] [--memory-requests 500]

Drives a freshly started `python demo.py` with concurrent gradio_client clients: a mix of
/classify and /explain, bursts of the same image at the same moment. Prints failures, latency
per endpoint (showing /classify keeps answering while LIME runs), and the server's resident
memory before and after a long run of requests.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def connect(url: str, timeout: float = 120):
    from gradio_client import Client

    deadline = time.time() + timeout
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def run_load(url: str, images: list[Path], clients: int, requests: int, explain_share: float,
             lime_samples: int, seed: int = 0) -> dict:
    """`requests` calls spread over `clients` threads that start together; returns the tallies."""
    from gradio_client import Client, handle_file

    rng = random.Random(seed)
    plan = [("/explain" if rng.random() < explain_share else "/classify",
             images[0] if rng.random() < 0.6 else rng.choice(images)) for _ in range(requests)]
    per_client = [plan[i::clients] for i in range(clients)]
    latencies: dict[str, list[float]] = {"/classify": [], "/explain": []}
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def work(jobs):
        client = Client(url, verbose=False)
        barrier.wait()
        for endpoint, image in jobs:
            args = ("top class", lime_samples, 0.45) if endpoint == "/explain" else ()
            start = time.perf_counter()
            try:
                client.predict(handle_file(str(image)), *args, api_name=endpoint)
                with lock:
                    latencies[endpoint].append(time.perf_counter() - start)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                with lock:
                    failures.append(f"{endpoint}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(jobs,)) for jobs in per_client]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "failures": failures, "seconds": time.perf_counter() - start}


def describe(result: dict) -> str:
    lines = [f"{sum(len(v) for v in result['latencies'].values())} answered, {len(result['failures'])} failed "
             f"in {result['seconds']:.1f} s"]
    for endpoint, values in result["latencies"].items():
        if values:
            q = np.percentile(values, [50, 95, 100])
            lines.append(f"  {endpoint}: n={len(values)} median {q[0]:.2f} s, p95 {q[1]:.2f} s, max {q[2]:.2f} s")
    lines += [f"  FAILED {f}" for f in result["failures"][:10]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--explain-share", type=float, default=0.2)
    parser.add_argument("--lime-samples", type=int, default=300)
    parser.add_argument("--memory-requests", type=int, default=500, help="0 skips the memory run")
    args = parser.parse_args()

    from app.launch import running_demo

    images = sorted((ROOT / "examples").glob("*.jpg"))
    with running_demo() as demo:
        connect(demo.url)
        print(f"load: {args.clients} clients, {args.requests} requests, "
              f"{args.explain_share:.0%} /explain at {args.lime_samples} LIME samples")
        result = run_load(demo.url, images, args.clients, args.requests, args.explain_share, args.lime_samples)
        print(describe(result))
        if args.memory_requests:
            before = rss_mb(demo.pid)
            mem = run_load(demo.url, images, 4, args.memory_requests, 0.0, args.lime_samples, seed=1)
            after = rss_mb(demo.pid)
            print(f"memory: {args.memory_requests} /classify requests: resident {before:.0f} MB -> {after:.0f} MB "
                  f"({after - before:+.0f} MB); {len(mem['failures'])} failed")
    sys.exit(1 if result["failures"] else 0)

if __name__ == "__main__":
    main()
