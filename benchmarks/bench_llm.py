"""LLM benchmark: embedded llama.cpp (xllamacpp) load time, prompt/generation tokens per second, and
what prompt-prefix caching buys on a structured-intent-sized call.

    .venv/bin/python benchmarks/bench_llm.py [--home DIR] [--gguf PATH] [--runs 5]

The caching probe sends the same ~600-token system prompt (instructions + 2 worked examples, the
shape the intent parser uses) with different short shopper messages and a JSON schema, and
compares p50 end-to-end latency with ``cache_prompt: false`` (every call evaluates the whole
prompt: "cold") against ``cache_prompt: true`` after one priming call ("warm"); the warm runs are
repeated through ``LLMClient.structured`` to show the client adds nothing material. Results go to
benchmarks/results/llm-<date>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine as common_machine  # noqa: E402

from assistant.llm import EmbeddedServer, LLMClient, ensure_model  # noqa: E402
from shopassist.config import Settings  # noqa: E402

SYSTEM = """You turn one shopper message into a JSON object for a product search engine.
Fields: query (the product words only, no prices, no negations), category (one product category
word or null), required (attribute values the shopper wants, at most 6), excluded (values or words
the shopper does not want, at most 6; keep every negation such as 不要/没有/without/no), min_price
and max_price (numbers or null; "under 100" means max_price 100, "100以内" means max_price 100),
currency (CNY, USD or null), price_change ("cheaper" or "pricier" when the shopper asks relative to
what was shown, else null), brands and exclude_brands (brand names as written), sort (relevance,
price_asc, price_desc, rating or sales), language (zh or en: the language of the message),
relation (new, refine, replace, compare or pick: how the message relates to the conversation),
references (1-based positions of shown products the message points at, e.g. "the second one" is 2).
Rules: copy words from the message, never invent brands or attributes; if the message is only a
follow-up ("cheaper", "not black", "第二个"), leave query empty and set relation; numbers stay
numbers; output one JSON object and nothing else.

Example 1
Message: 牛仔裤女 便宜点的 不要破洞 300以内
JSON: {"query": "牛仔裤 女", "category": "牛仔裤", "required": ["女"], "excluded": ["破洞"],
"min_price": null, "max_price": 300, "currency": "CNY", "price_change": "cheaper", "brands": [],
"exclude_brands": [], "sort": "price_asc", "language": "zh", "relation": "new", "references": []}

Example 2
Message: waterproof hiking boots for men, not brown, under $120, no TrailCo please
JSON: {"query": "waterproof hiking boots men", "category": "hiking boots", "required": ["waterproof",
"men"], "excluded": ["brown"], "min_price": null, "max_price": 120, "currency": "USD",
"price_change": null, "brands": [], "exclude_brands": ["TrailCo"], "sort": "relevance",
"language": "en", "relation": "new", "references": []}

Example 3
Message: 第二个有没有黑色的
JSON: {"query": "", "category": null, "required": ["黑色"], "excluded": [], "min_price": null,
"max_price": null, "currency": null, "price_change": null, "brands": [], "exclude_brands": [],
"sort": "relevance", "language": "zh", "relation": "pick", "references": [2]}
"""

MESSAGES = [
    "高腰牛仔裤 黑色 200以内",
    "red running shoes under $80",
    "面霜 补水 不要含酒精的",
    "cheaper please",
    "compare the first and third",
    "男士冬季加绒外套 不要羽绒",
    "a waterproof jacket for hiking, no yellow",
    "口红 哑光 不要太红的",
    "wireless earbuds with noise cancelling under 100 dollars",
    "第三个详细说说",
    "儿童运动鞋 透气 300元以内",
]


def intent_schema() -> dict[str, Any]:
    """The agent's own schema: the real workload."""
    from assistant.intent import ShoppingIntent

    return ShoppingIntent.llm_schema()


def machine() -> dict[str, Any]:
    import xllamacpp

    return {
        **common_machine(),
        "xllamacpp": metadata.version("xllamacpp"),
        "langchain_openai": metadata.version("langchain-openai"),
        "llama_cpp_system_info": xllamacpp.get_system_info().strip(),
    }


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def chat(http: httpx.Client, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = http.post("/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--home", type=Path, default=None, help="data folder (default: SHOPASSIST_HOME or ~/.shopassist)"
    )
    parser.add_argument("--gguf", type=Path, default=None, help="another local GGUF instead of the packaged model")
    parser.add_argument("--runs", type=int, default=5, help="calls per latency measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    home = args.home or Settings.from_env().home
    runs = max(1, min(args.runs, len(MESSAGES) - 1))

    started = time.perf_counter()
    model = ensure_model(home, args.gguf)
    model_seconds = time.perf_counter() - started
    schema = intent_schema()
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "model": {"path": str(model.path), "sha256": model.sha256, "bytes": model.path.stat().st_size},
        "model_ready_seconds": round(model_seconds, 3),
        "model_assembled_now": model.assembled,
        "threads": args.threads,
        "ctx": 4096,
    }

    started = time.perf_counter()
    with EmbeddedServer(model.path, threads=args.threads, ctx=4096) as server:
        results["load_seconds"] = round(server.load_seconds or 0.0, 3)
        results["start_to_healthy_seconds"] = round(time.perf_counter() - started, 3)
        http = httpx.Client(base_url=server.base_url, timeout=300)
        tokens = httpx.post(server.root_url + "/tokenize", json={"content": SYSTEM}).json()["tokens"]
        results["system_prompt_tokens"] = len(tokens)

        # -- prefix caching on a structured-intent call ----------------------------------------------------
        def intent_body(message: str, cache: bool) -> dict[str, Any]:
            return {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Message: {message}\nJSON:"},
                ],
                "max_tokens": 160,
                "temperature": 0,
                "response_format": {"type": "json_object", "schema": schema},
                "cache_prompt": cache,
            }

        def probe(batch: list[str], cache: bool) -> dict[str, Any]:
            latencies, evaluated, cached, generated = [], [], [], []
            for message in batch:
                seconds, body = chat(http, intent_body(message, cache))
                latencies.append(seconds)
                evaluated.append(body["timings"]["prompt_n"])
                cached.append(body["timings"].get("cache_n", 0))
                generated.append(body["timings"]["predicted_n"])
            return {
                "p50_seconds": p50(latencies),
                "latencies": [round(x, 3) for x in latencies],
                "prompt_tokens_evaluated_p50": statistics.median(evaluated),
                "prompt_tokens_from_cache_p50": statistics.median(cached),
                "generated_tokens_p50": statistics.median(generated),
            }

        # First call after start: nothing cached yet, it evaluates (and caches) the whole prompt.
        first_seconds, first = chat(http, intent_body(MESSAGES[0], True))
        warm = probe(MESSAGES[-runs:], cache=True)
        cold = probe(MESSAGES[1 : 1 + runs], cache=False)

        # -- raw throughput: ~270-token prompt, 128 generated tokens, no cache ---------------------------
        # (after the caching probe so it cannot pre-warm it; it also evicts the intent prompt from the
        # slot, so the LLMClient runs below show whether the host-RAM prompt cache brings it back)
        pp, tg = [], []
        for i in range(3):
            _, body = chat(
                http,
                {
                    "messages": [{"role": "user", "content": f"{i} " + "Describe this product for a shopper. " * 40}],
                    "max_tokens": 128,
                    "temperature": 0,
                    "ignore_eos": True,
                    "cache_prompt": False,
                },
            )
            pp.append(body["timings"]["prompt_per_second"])
            tg.append(body["timings"]["predicted_per_second"])
        results["prompt_tokens_per_second"] = round(statistics.median(pp), 1)
        results["generation_tokens_per_second"] = round(statistics.median(tg), 1)

        client = LLMClient(server.base_url, server.alias, max_retries=0)
        client_latencies = []
        sample: dict[str, Any] = {}
        for message in MESSAGES[1 : 1 + runs]:
            t0 = time.perf_counter()
            sample[message] = client.structured(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Message: {message}\nJSON:"}],
                schema,
                max_tokens=160,
            )
            client_latencies.append(time.perf_counter() - t0)
        client.close()
        http.close()
        results["prefix_cache"] = {
            "runs": runs,
            "cold_cache_prompt_false": cold,
            "first_call_after_start_seconds": round(first_seconds, 3),
            "first_call_prompt_tokens": first["timings"]["prompt_n"],
            "warm_cache_prompt_true": warm,
            "warm_via_LLMClient_structured_p50_seconds": p50(client_latencies),
            "via_LLMClient_latencies": [round(x, 3) for x in client_latencies],
            "via_LLMClient_answers": sample,
            "speedup_p50": round(cold["p50_seconds"] / warm["p50_seconds"], 2),
        }

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"llm-{results['date']}.json"
    path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    pc = results["prefix_cache"]
    print(
        f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, xllamacpp {results['machine']['xllamacpp']}"
    )
    print(f"model ready (assembled={model.assembled}): {results['model_ready_seconds']:.2f} s")
    print(f"load: {results['load_seconds']:.2f} s (healthy after {results['start_to_healthy_seconds']:.2f} s)")
    print(
        f"prompt: {results['prompt_tokens_per_second']} tok/s   generation: {results['generation_tokens_per_second']} tok/s"
    )
    print(f"system prompt: {results['system_prompt_tokens']} tokens; structured intent call, p50 of {runs}:")
    print(f"  cold (no prefix cache): {pc['cold_cache_prompt_false']['p50_seconds']:.2f} s")
    print(f"  first call after start: {pc['first_call_after_start_seconds']:.2f} s")
    print(f"  warm (prefix cached):   {pc['warm_cache_prompt_true']['p50_seconds']:.2f} s  (x{pc['speedup_p50']})")
    print(f"  warm via LLMClient:     {pc['warm_via_LLMClient_structured_p50_seconds']:.2f} s")
    print(f"written to {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    main()
