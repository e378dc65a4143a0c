"""llama.cpp threads for the embedded model: tokens per second with 1 vs 2 (or more) threads.

    .venv/bin/python benchmarks/bench_llm_threads.py [--home DIR] [--threads 1,2] [--rounds 2]

Each round starts the embedded server once per thread count (alternating, so a busy neighbour
hurts both alike), sends two ~270-token prompts with 64 generated tokens (no prompt cache) and
records llama.cpp's own prompt and generation tokens/s plus the load average. Results go to
benchmarks/results/llm-threads-<date>.json. What chose ``assistant.llm.settings.default_threads``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine  # noqa: E402

from assistant.llm import EmbeddedServer, ensure_model  # noqa: E402
from shopassist.config import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    model = ensure_model(args.home or Settings.from_env().home, progress=True)
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for threads in (int(t) for t in args.threads.split(",")):
            started = time.perf_counter()
            with EmbeddedServer(model.path, threads=threads, ctx=4096) as server:
                load = time.perf_counter() - started
                pp, tg = [], []
                for i in range(2):
                    body = httpx.post(
                        server.base_url + "/chat/completions",
                        timeout=600,
                        json={
                            "messages": [{"role": "user", "content": f"{i} " + "Describe this product. " * 40}],
                            "max_tokens": 64,
                            "temperature": 0,
                            "ignore_eos": True,
                            "cache_prompt": False,
                        },
                    ).json()
                    pp.append(round(body["timings"]["prompt_per_second"], 1))
                    tg.append(round(body["timings"]["predicted_per_second"], 1))
            run = {"round": rnd, "threads": threads, "load_s": round(load, 2), "prompt_tok_s": pp, "gen_tok_s": tg}
            run["loadavg_1m"] = round(os.getloadavg()[0], 2)
            runs.append(run)
            print(json.dumps(run), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"llm-threads-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=2) + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
