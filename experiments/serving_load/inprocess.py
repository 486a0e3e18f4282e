"""Per-call cost of the service's answers in process (no HTTP): mean ms of persona, recommend, rank_offers.

TAILOR_HOME=var python experiments/serving_load/inprocess.py demo_completejourney   # after `make demo`
"""

from __future__ import annotations

import sys
import time

from serving.state import ServingState


def main() -> None:
    dataset = sys.argv[1] if len(sys.argv) > 1 else None
    t0 = time.perf_counter()
    s = ServingState.load(dataset=dataset)
    print(f"load {time.perf_counter() - t0:.1f} s")
    raw = [str(h) for h in range(1, 400)]  # Complete Journey household ids (unknown ones get cold-start answers)
    calls = {"persona": s.persona, "recommend": lambda m: s.recommend(m, k=10),
             "rank_offers": lambda m: s.rank_offers(m, k=5, channel="app")}  # fmt: skip
    for name, fn in calls.items():
        for m in raw[:20]:  # warm-up
            fn(m)
        t = time.perf_counter()
        for m in raw:
            fn(m)
        print(f"{name}: {(time.perf_counter() - t) / len(raw) * 1e3:.2f} ms per call")


if __name__ == "__main__":
    main()
