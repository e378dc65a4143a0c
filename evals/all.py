"""``shopassist eval all``: every suite on the data it is given, one report.

Suites (each next to baselines measured in the same run, and published numbers where they exist):

* ``retrieval``: Multi-CPR pool, MRR@10 / Recall (hybrid vs BM25);
* ``relevance``: CrowdFlower, nDCG@10 (hybrid vs BM25 vs random);
* ``query_understanding``: ChineseEcomQA, accuracy per task (the LLM vs the majority class);
* ``dialogues``: the project's dialogue suite (the first ``--dialogues`` with the LLM);
* ``dialogues_demo``: the dialogue suites on the bundled demo catalog (``demo_zh``/``demo_en``;
  ``--dialogues`` of them with the LLM, taken from each file in turn), per dialogue act and
  answers correct;
* ``sessions``: Diginetica next click, P@20 / MRR@20 (model vs statistics vs popularity; a
  sample of test prefixes with its 95% interval, fewer epochs than the full run);
* ``replay``: real queries from the log through search and the intent parser (latency
  histogram, and a run folder ``eval diff`` can compare later).

Each suite's result is written to ``OUT/<suite>.json`` as soon as it finishes, so a stopped run
resumes where it stopped (``--fresh`` starts over). ``OUT/manifest.json`` records versions, the
LLM's GGUF hash, seeds and sizes; ``OUT/report.json`` and ``OUT/report.html`` (tables and
matplotlib plots, self-contained) are written at the end.
"""

from __future__ import annotations

import base64
import html
import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shopassist.config import Settings
from shopassist.errors import UsageError
from shopassist.machine import machine

SUITES = ("retrieval", "relevance", "query_understanding", "dialogues", "dialogues_demo", "sessions", "replay")
BASELINE_KEYS = ("turns_passed_share", "dialogues_passed_share", "per_act", "answers")  # of the rules-only run

PUBLISHED_NOTES = {
    "retrieval": "Multi-CPR paper (SIGIR 2022, 1M passages): BM25 MRR@10 0.2253, DPR 0.2704; not comparable to this pool",
    "relevance": "no published nDCG@10 for this split (Kaggle scored quadratic kappa)",
}


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """Drop per-query runs (large) from a suite result before it is stored in the report."""
    return {k: v for k, v in result.items() if k not in ("runs", "per_query")}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or None
    except OSError:
        return None


def run_all(
    out_dir: Path,
    *,
    shared: Path,
    settings: Settings,
    llm: Any = None,
    suites: tuple[str, ...] = SUITES,
    qu_per_task: int = 10,
    dialogue_limit: int = 15,
    session_sample: int = 10_000,
    session_epochs: int = 2,
    replay_limit: int = 1000,
    seed: int = 0,
    fresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(suites) - set(SUITES)
    if unknown:
        raise UsageError(f"unknown suites {sorted(unknown)}; the suites are: {', '.join(SUITES)}")
    from evals.replay import package_versions

    manifest = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git_commit": _git_commit(),
        "machine": machine(),
        "versions": package_versions(),
        "seed": seed,
        "shared_data": str(shared),
        "llm": llm.info() if llm is not None and hasattr(llm, "info") else None,
        "sizes": {
            "qu_per_task": qu_per_task,
            "dialogue_limit": dialogue_limit,
            "session_sample": session_sample,
            "session_epochs": session_epochs,
            "replay_limit": replay_limit,
        },
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=str), "utf-8")
    opts = {
        "qu_per_task": qu_per_task,
        "dialogue_limit": dialogue_limit,
        "session_sample": session_sample,
        "session_epochs": session_epochs,
        "replay_limit": replay_limit,
    }
    results: dict[str, Any] = {}
    for suite in suites:
        path = out_dir / f"{suite}.json"
        if path.exists() and not fresh:
            results[suite] = json.loads(path.read_text(encoding="utf-8"))
            log(f"[{suite}] done in an earlier run: kept ({path})")
            continue
        log(f"[{suite}] running ...")
        t0 = time.perf_counter()
        try:
            result = _run_suite(suite, shared, settings, llm, out_dir, seed, progress, opts)
        except FileNotFoundError as exc:
            result = {"skipped": f"data not found: {exc}"}
        result["suite_seconds"] = round(time.perf_counter() - t0, 1)
        path.write_text(json.dumps(_strip(result), ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        results[suite] = _strip(result)
        log(f"[{suite}] {result['suite_seconds']} s")
    report: dict[str, Any] = {"manifest": manifest, "suites": results, "published_notes": PUBLISHED_NOTES}
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str), "utf-8")
    (out_dir / "report.html").write_text(render_html(report, out_dir), encoding="utf-8")
    return report


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(str(path))
    return path


def _run_suite(
    suite: str,
    shared: Path,
    settings: Settings,
    llm: Any,
    out_dir: Path,
    seed: int,
    progress: bool,
    opts: dict[str, Any],
) -> dict[str, Any]:
    if suite == "retrieval":
        from evals.retrieval import run_multicpr

        return run_multicpr(_need(shared / "eval" / "multicpr_ecom_pool"), settings=settings, progress=progress)
    if suite == "relevance":
        from evals.relevance import run_crowdflower

        path = _need(shared / "eval" / "crowdflower_relevance" / "judgements.jsonl")
        return run_crowdflower(path, settings=settings, progress=progress)
    if suite == "query_understanding":
        if llm is None:
            return {"skipped": "no LLM (--no-llm)"}
        from evals.query_understanding import run_query_understanding

        path = _need(shared / "eval" / "chinese_ecomqa_query" / "items.jsonl")
        return run_query_understanding(path, llm=llm, per_task=opts["qu_per_task"], seed=seed, progress=progress)
    if suite in ("dialogues", "dialogues_demo"):
        from evals.dialogues import default_suite, demo_suites, run_dialogues

        paths = [default_suite()] if suite == "dialogues" else demo_suites()
        if not paths:
            raise FileNotFoundError("evals/data/dialogues/demo_*.jsonl")
        limit = opts["dialogue_limit"] or None
        result = run_dialogues(paths, settings=settings, llm=llm, progress=progress, limit=limit)
        if llm is not None:  # the same dialogues with rules and templates only: the baseline
            base = run_dialogues(paths, settings=settings, llm=None, progress=progress, limit=limit)
            result["rules_only_baseline"] = {k: base[k] for k in BASELINE_KEYS}
        return result
    if suite == "sessions":
        from evals.sessions import run_sessions

        data = _need(shared / "sessions" / "diginetica")
        return run_sessions(
            data,
            sample=opts["session_sample"] or None,
            seed=seed,
            epochs=opts["session_epochs"] or None,
            progress=progress,
        )
    if suite == "replay":
        from assistant.stack import build_stack
        from evals.common import eval_home, file_digest
        from evals.replay import load_run, run_replay
        from shopassist.resources import demo_catalog_path

        # the bundled demo catalog in its own eval home (idempotent: only new or changed rows embed)
        demo = demo_catalog_path()
        with build_stack(eval_home(settings, "demo", file_digest(demo)), catalog_file=demo, progress=progress) as stack:
            queries = _need(shared / "querylogs" / "multicpr_ecom_train_queries.tsv")
            summary = run_replay(
                queries, out_dir / "replay-run", stack, limit=opts["replay_limit"], seed=seed, progress=progress
            )
        _, rows = load_run(out_dir / "replay-run")
        ms = sorted(r["ms"] for r in rows.values())
        empty = sum(1 for r in rows.values() if not r["top"])
        return {
            **summary,
            "search_ms": ms,
            "search_ms_p50": ms[len(ms) // 2] if ms else None,
            "search_ms_p99": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else None,
            "empty_result_share": round(empty / max(1, len(rows)), 4),
        }
    raise UsageError(f"unknown suite {suite}")


# -- report --------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bars(title: str, labels: list[str], values: list[float], ylabel: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    colors = ["#2c6e49" if i == 0 else "#9aa5b1" for i in range(len(labels))]
    ax.bar(labels, values, color=colors)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelsize=8, labelrotation=30 if len(labels) > 4 else 0)
    return _png(fig)


def _grouped(title: str, labels: list[str], series: dict[str, list[float]], ylabel: str) -> str:
    """Side-by-side bars per label (e.g. the system and its baseline for each task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    width = 0.8 / max(1, len(series))
    colors = ["#2c6e49", "#9aa5b1", "#d4a373"]
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, values, width, label=name, color=colors[k % len(colors)])
    ax.set_xticks(range(len(labels)), labels)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _png(fig)


def _hist(title: str, values: list[float], xlabel: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    ax.hist(values, bins=40, color="#2c6e49")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("queries")
    return _png(fig)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    e = html.escape
    th = "".join(f"<th>{e(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _act_table(r: dict[str, Any]) -> str:
    """Turns passed per dialogue act (and answers correct), beside the rules-only baseline's."""
    acts = r.get("per_act") or {}
    base = (r.get("rules_only_baseline") or {}).get("per_act") or {}
    rows: list[list[Any]] = [
        [act, v["turns"], v["passed_share"], v.get("read_as_act", ""), base.get(act, {}).get("passed_share", "")]
        for act, v in acts.items()
    ]
    answers = r.get("answers") or {}
    if answers.get("turns"):
        b = (r.get("rules_only_baseline") or {}).get("answers") or {}
        rows.append(["answers correct", answers["turns"], answers.get("share"), "", b.get("share", "")])
    if not rows:
        return ""
    return _table(rows, ["act", "turns", "turns passed", "read as that act", "rules only: turns passed"])


def render_html(report: dict[str, Any], out_dir: Path) -> str:
    s = report["suites"]
    parts: list[str] = []
    m = report["manifest"]
    parts.append(
        f"<p>Run {html.escape(str(m.get('started')))} – {html.escape(str(report.get('finished')))}, commit "
        f"<code>{html.escape(str(m.get('git_commit'))[:12])}</code>, machine: {html.escape(json.dumps(m.get('machine')))}</p>"
    )
    for name, r in s.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if "skipped" in r:
            parts.append(f"<p>skipped: {html.escape(str(r['skipped']))}</p>")
            continue
        if name in ("retrieval", "relevance"):
            systems = r["systems"]
            metrics = list(next(iter(systems.values())).keys())
            parts.append(
                _table([[k, *[f"{v[mm]:.4f}" for mm in metrics]] for k, v in systems.items()], ["system", *metrics])
            )
            key = "MRR@10" if name == "retrieval" else "nDCG@10"
            parts.append(
                f'<img src="{_bars(f"{name}: {key}", list(systems), [v[key] for v in systems.values()], key)}">'
            )
            parts.append(f"<p class=note>{html.escape(PUBLISHED_NOTES[name])}</p>")
        elif name == "query_understanding":
            tasks = sorted(r["accuracy"])
            parts.append(
                _table(
                    [[t, r["accuracy"][t], r["majority_baseline"][t], r["counts"][t]] for t in tasks],
                    ["task", "LLM accuracy", "majority baseline", "items"],
                )
            )
            series = {
                "LLM": [r["accuracy"][t] for t in tasks],
                "majority class": [r["majority_baseline"][t] for t in tasks],
            }
            parts.append(f'<img src="{_grouped("query understanding: accuracy", tasks, series, "accuracy")}">')
        elif name in ("dialogues", "dialogues_demo"):
            g = r.get("grounding", {})
            rows = [
                [
                    "with the LLM" if r.get("llm") else "rules only",
                    r.get("dialogues"),
                    r.get("turns"),
                    r.get("turns_passed_share"),
                    r.get("dialogues_passed_share"),
                    g.get("ungrounded_products_shown"),
                    g.get("ungrounded_prices_shown"),
                    r.get("turn_ms_p50"),
                ]
            ]
            if r.get("rules_only_baseline"):
                b = r["rules_only_baseline"]
                rows.append(
                    [
                        "rules only (baseline)",
                        r.get("dialogues"),
                        r.get("turns"),
                        b["turns_passed_share"],
                        b["dialogues_passed_share"],
                        "",
                        "",
                        "",
                    ]
                )
            head = [
                "system",
                "dialogues",
                "turns",
                "turns passed",
                "dialogues passed",
                "ungrounded products",
                "ungrounded prices",
                "turn p50 ms",
            ]
            parts.append(_table(rows, head))
            parts.append(_act_table(r))
        elif name == "sessions":
            res = r["results"]
            rows = [
                [k, v["P@20"], v.get("P@20_ci95", ""), v["MRR@20"], v.get("MRR@20_ci95", ""), "this run"]
                for k, v in res.items()
            ]
            rows += [
                [k, v["P@20"], "", v["MRR@20"], "", v.get("source", "published")]
                for k, v in r.get("published", {}).items()
            ]
            parts.append(_table(rows, ["system", "P@20", "95% interval", "MRR@20", "95% interval", "source"]))
            parts.append(
                f"<p class=note>{r.get('test_prefixes')} test prefixes scored (sample: {r.get('sample')}), "
                f"{r.get('params', {}).get('ModelParams', {}).get('epochs')} epochs; train {r.get('train_seconds')} s, "
                f"eval {r.get('eval_seconds')} s</p>"
            )
            labels = list(res) + list(r.get("published", {}))
            values = [v["P@20"] for v in res.values()] + [v["P@20"] for v in r.get("published", {}).values()]
            parts.append(f'<img src="{_bars("Diginetica P@20", labels, values, "P@20 (%)")}">')
        elif name == "replay":
            parts.append(
                _table(
                    [
                        [
                            r.get("queries"),
                            r.get("search_ms_p50"),
                            r.get("search_ms_p99"),
                            r.get("empty_result_share"),
                            r.get("catalog_snapshot"),
                        ]
                    ],
                    ["queries", "search p50 ms", "search p99 ms", "empty results", "catalog snapshot"],
                )
            )
            if r.get("search_ms"):
                parts.append(f'<img src="{_hist("search latency, real queries", r["search_ms"], "ms")}">')
        parts.append(f"<p class=note>{r.get('suite_seconds', '?')} s</p>")
    style = (
        "body{font-family:sans-serif;max-width:980px;margin:24px auto;color:#222}"
        "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}"
        "th{background:#f3f3f3}.note{color:#666;font-size:12px}img{margin:6px 0}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>shopassist eval report</title>"
        f"<style>{style}</style></head><body><h1>shopassist eval report</h1>{''.join(parts)}</body></html>"
    )
