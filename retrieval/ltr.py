"""A learned ranker over the retriever's own per-candidate features (LightGBM lambdarank).

``HybridRetriever.candidate_features(query, ids)`` computes, for each candidate, the five fusion
features exactly as the fusion does (bm25, dense, doc, coverage, pairs) plus a few cheap extras
(``RAW_FEATURES``); ``feature_matrix`` turns them into the model's columns (``FEATURE_NAMES``):

    raw values           the eight raw features
    z_<f>                each of bm25, dense, doc, coverage, pairs, idf_coverage z-scored over
                         the query's candidates (what the fusion sums)
    fusion               the equal-weight fusion score (sum of the five fusion z-scores)
    bm25_rel             bm25 / the query's best bm25 (0 when no candidate matches a term)
    query_terms, lang_zh, candidates   query-level context

A ``LearnedRanker`` is a LightGBM text model plus a small JSON sidecar (``<model>.meta.json``:
feature names, the query languages it was trained on, training figures). The retriever uses it
only for queries in a language it was trained on and falls back to the fusion otherwise (or when
no model is configured). ``train`` fits one from per-query (features, relevance grade) groups;
grades are 0..3 and LightGBM's default label gain 2^g-1 is the eval's nDCG gain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FUSION_FEATURES = ("bm25", "dense", "doc", "coverage", "pairs")
# idf_coverage: the idf-weighted share of the query's terms the product holds; title_terms: how
# many indexed terms the product has; head_in_title: the query's last term (an English query's
# head noun, mostly) is among them. (Measured and dropped, no gain out of fold: the share of query
# terms in the description, 4x the scoring cost; where in the title the first match sits.)
EXTRA_FEATURES = ("idf_coverage", "title_terms", "head_in_title")
RAW_FEATURES = (*FUSION_FEATURES, *EXTRA_FEATURES)
_Z_FEATURES = (*FUSION_FEATURES, "idf_coverage")
FEATURE_NAMES = (
    *RAW_FEATURES,
    *(f"z_{f}" for f in _Z_FEATURES),
    "fusion",
    "bm25_rel",
    "query_terms",
    "lang_zh",
    "candidates",
)

# Small trees, many rows per leaf: ~5,000 judged pairs over ~130 queries. Chosen among eight
# variants (leaves 3/7, learning rate 0.02-0.05, 60-300 rounds, lambdarank/xendcg/regression,
# boosting from the fusion score) by out-of-fold nDCG@10 on the visible CrowdFlower queries; all
# landed within 0.836-0.847, i.e. level with the equal-weight fusion (0.846), not above it.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "ndcg_eval_at": [10],
    "learning_rate": 0.03,
    "num_leaves": 3,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
DEFAULT_ROUNDS = 300


def _z(values: np.ndarray) -> np.ndarray:
    sd = float(values.std())
    if sd < 1e-12:
        return np.zeros_like(values)
    return (values - float(values.mean())) / sd


def feature_matrix(raw: Mapping[str, np.ndarray], query_terms: int, zh: bool) -> np.ndarray:
    """The model's input (rows: candidates, columns: ``FEATURE_NAMES``) from the raw features."""
    n = len(raw["bm25"])
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    cols: list[np.ndarray] = [np.asarray(raw[f], dtype=np.float64) for f in RAW_FEATURES]
    zs = [_z(np.asarray(raw[f], dtype=np.float64)) for f in _Z_FEATURES]
    cols.extend(zs)
    cols.append(np.sum(zs[: len(FUSION_FEATURES)], axis=0))
    bm25 = np.asarray(raw["bm25"], dtype=np.float64)
    top = float(bm25.max())
    cols.append(bm25 / top if top > 0 else np.zeros(n))
    cols.append(np.full(n, float(query_terms)))
    cols.append(np.full(n, 1.0 if zh else 0.0))
    cols.append(np.full(n, float(n)))
    return np.column_stack(cols)


@dataclass
class LearnedRanker:
    """A loaded LightGBM ranking model; ``score`` one query's feature matrix."""

    booster: Any
    languages: tuple[str, ...] = ("en",)
    meta: dict[str, Any] = field(default_factory=dict)

    def applies(self, language: str) -> bool:
        return not self.languages or language in self.languages

    def score(self, matrix: np.ndarray) -> np.ndarray:
        if len(matrix) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.booster.model_to_string(), encoding="utf-8")
        meta = {**self.meta, "features": list(FEATURE_NAMES), "languages": list(self.languages)}
        meta_path(path).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedRanker:
        """Load a model written by ``save``; ValueError when its features are not this code's."""
        import lightgbm as lgb

        path = Path(path)
        booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
        mp = meta_path(path)
        meta = json.loads(mp.read_text(encoding="utf-8")) if mp.exists() else {}
        names = tuple(meta.get("features") or booster.feature_name())
        if names != FEATURE_NAMES:
            raise ValueError(f"{path}: model features {list(names)} differ from this version's {list(FEATURE_NAMES)}")
        return cls(booster, tuple(meta.get("languages") or ()), meta)


def meta_path(model_path: str | Path) -> Path:
    return Path(model_path).with_name(Path(model_path).name + ".meta.json")


def train(
    groups: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    languages: Sequence[str] = ("en",),
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> LearnedRanker:
    """Fit a lambdarank model on per-query ``(features, grades)`` groups (grades 0..3)."""
    import lightgbm as lgb

    groups = [(x, y) for x, y in groups if len(y)]
    if not groups:
        raise ValueError("no training queries")
    x = np.vstack([g[0] for g in groups])
    y = np.concatenate([g[1] for g in groups]).astype(np.int64)
    if y.min() < 0 or y.max() > 30:
        raise ValueError("relevance grades must be small non-negative integers")
    data = lgb.Dataset(
        x,
        label=y,
        group=[len(g[1]) for g in groups],
        feature_name=list(FEATURE_NAMES),
        free_raw_data=True,
        params={"verbosity": -1},
    )
    p = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    if "min_data_in_leaf" not in (params or {}):  # a small training set still gets a few splits
        p["min_data_in_leaf"] = min(int(DEFAULT_PARAMS["min_data_in_leaf"]), max(5, len(y) // 40))
    booster = lgb.train(p, data, num_boost_round=rounds)
    return LearnedRanker(booster, tuple(languages), dict(meta or {}))
