"""Session-based next-item recommendation: a NISER-style neural model fused with the shared
item-transition statistics (``ranking.knowledge.SharedKnowledge``).

* **Data**: sessions are lists of integer item ids (``{"items": [...]}`` per JSONL line);
  evaluation prefixes are ``{"prefix": [...], "next": id}``. Training uses every prefix of
  every session (the SR-GNN augmentation: ``[a, b, c]`` gives ``[a] → b`` and ``[a, b] → c``).
* **Model** (NISER, Gupta et al. 2019, without the GNN layer): L2-normalised item embeddings
  with dropout, position embeddings counted from the end of the session, a soft-attention
  readout keyed on the last item, concatenated with the last item and projected, normalised,
  and scored against *all* normalised item embeddings as cosine × temperature. Trained with a
  sampled softmax (4,096 uniform negatives shared by the batch, corrected by log((N-1)/K);
  ``negatives=0`` gives the full softmax, ~5x slower per step on 2 CPU cores), Adam with a
  decaying learning rate. Scoring always ranks all items.
* **Statistics**: ``SharedKnowledge.learn_sessions`` over the same training sessions, then
  ``next_scores`` — computed here in batches as sparse matrix products that reproduce
  ``next_scores`` exactly (``tests/test_sessions.py`` checks it against the original).
* **Fusion**: ``log_softmax(model) + beta · log(eps + stats / sum(stats))``, where an item the
  session already holds gets the row's best statistics term (the statistics never count an item
  following itself, so without that they would demote every re-click: 20 % of Diginetica's next
  clicks return to an item of the session, 9 % repeat the last one); ``beta`` and ``eps`` were
  chosen on a validation split (the last 10 % of train sessions, ``evals.sessions.run_validation``),
  never on test.
* **Ranking and metrics**: ties are broken by the smaller item id, in top-k and in the rank
  used for P@20 / MRR@20 alike, so the metrics are exact and deterministic.

torch is imported lazily: ``import ranking.sessrec`` works without it; only training and
scoring the neural model need it (``pip install -e ".[torch]"``).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ranking.knowledge import KnowledgeParams, SharedKnowledge

Session = list[int]


# -- data --------------------------------------------------------------------------------------
def load_sessions(path: Path) -> list[Session]:
    with open(path, encoding="utf-8") as handle:
        return [[int(i) for i in json.loads(line)["items"]] for line in handle if line.strip()]


def load_prefixes(path: Path) -> tuple[list[Session], list[int]]:
    prefixes: list[Session] = []
    targets: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                prefixes.append([int(i) for i in row["prefix"]])
                targets.append(int(row["next"]))
    return prefixes, targets


def augment(sessions: Iterable[Sequence[int]]) -> tuple[list[Session], list[int]]:
    """Every proper prefix of every session with the item that followed it (SR-GNN style)."""
    prefixes: list[Session] = []
    targets: list[int] = []
    for s in sessions:
        for i in range(1, len(s)):
            prefixes.append(list(s[:i]))
            targets.append(int(s[i]))
    return prefixes, targets


def pad_right(prefixes: Sequence[Sequence[int]], max_len: int) -> np.ndarray:
    """(n, max_len) int64, the last ``max_len`` items right-aligned (the last item in the last
    column), 0 as padding."""
    out = np.zeros((len(prefixes), max_len), dtype=np.int64)
    for r, p in enumerate(prefixes):
        tail = p[-max_len:]
        if tail:
            out[r, max_len - len(tail) :] = tail
    return out


# -- metrics -----------------------------------------------------------------------------------
def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target among all columns: items scoring higher, plus items
    scoring equal with a smaller column index (the deterministic tie-break of ``top_k``)."""
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    t = scores[np.arange(len(targets)), targets][:, None]
    higher = (scores > t).sum(axis=1)
    cols = np.arange(scores.shape[1])[None, :]
    tied_before = ((scores == t) & (cols < targets[:, None])).sum(axis=1)
    return (higher + tied_before).astype(np.int64)


def hit_and_rr(ranks: np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    ranks = np.asarray(ranks)
    hit = (ranks < k).astype(np.float64)
    rr = np.where(ranks < k, 1.0 / (ranks + 1.0), 0.0)
    return hit, rr


def metrics_from_ranks(ranks: np.ndarray, k: int = 20) -> dict[str, float]:
    """P@k (hit rate) and MRR@k in percent."""
    hit, rr = hit_and_rr(ranks, k)
    n = max(1, len(hit))
    return {f"P@{k}": 100.0 * float(hit.sum()) / n, f"MRR@{k}": 100.0 * float(rr.sum()) / n}


def top_k(scores: np.ndarray, k: int = 20) -> np.ndarray:
    """Column indices of the k best scores per row, best first, ties by smaller index."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)
    return order[:, :k]


# -- statistics --------------------------------------------------------------------------------
class TransitionStats:
    """``SharedKnowledge`` learned on the sessions, scored in batches as sparse products.

    Item ``i`` is column ``i - 1``; ``n_items`` is the largest id. ``scores(prefixes)`` equals
    ``knowledge.next_scores([str(i) for i in prefix])`` for every row."""

    def __init__(self, sessions: Sequence[Sequence[int]], n_items: int, params: KnowledgeParams | None = None) -> None:
        from scipy import sparse

        self.n_items = n_items
        self.knowledge = SharedKnowledge(params)
        self.knowledge.learn_sessions([str(i) for i in s] for s in sessions)
        self.params = self.knowledge.params
        self.tables = []
        for table, weight in (
            (self.knowledge.transitions, self.params.transition_weight),
            (self.knowledge.cooc, self.params.cooc_weight),
        ):
            rows: list[int] = []
            cols: list[int] = []
            vals: list[float] = []
            for src, row in table.items():
                total = sum(row.values())
                if not total:
                    continue
                r = int(src) - 1
                for dst, c in row.items():
                    rows.append(r)
                    cols.append(int(dst) - 1)
                    vals.append(weight * c / total)
            if weight:
                self.tables.append(sparse.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float64))
        self.matrix = sum(self.tables[1:], self.tables[0]) if self.tables else sparse.csr_matrix((n_items, n_items))

    def recency_weights(self, prefixes: Sequence[Sequence[int]]) -> Any:
        from scipy import sparse

        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        decay = self.params.recency
        for r, p in enumerate(prefixes):
            seen: set[int] = set()
            k = 0
            for item in reversed(p):
                if item in seen:
                    continue
                seen.add(item)
                if 1 <= item <= self.n_items:
                    rows.append(r)
                    cols.append(item - 1)
                    vals.append(decay**k)
                k += 1
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(prefixes), self.n_items), dtype=np.float64)

    def scores(self, prefixes: Sequence[Sequence[int]]) -> np.ndarray:
        """Dense (len(prefixes), n_items) statistics scores."""
        return np.asarray((self.recency_weights(prefixes) @ self.matrix).toarray())


def popularity(sessions: Iterable[Sequence[int]], n_items: int) -> np.ndarray:
    counts = np.zeros(n_items, dtype=np.float64)
    for s in sessions:
        for i in s:
            if 1 <= i <= n_items:
                counts[i - 1] += 1
    return counts


# -- the neural model --------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParams:
    """Chosen on the validation split: trained on the first 90 % of Diginetica train sessions,
    scored on 15,000 prefixes sampled from the last 10 % (P@20 / MRR@20 in percent):
    4 epochs 51.17 / 18.32, 6 epochs 52.36 / 18.50 (the statistics alone: 39.42 / 11.58).

    ``repeat`` (off) adds a learned bonus for re-clicking a session item (per distance from the end,
    plus a session-dependent shift) and scores the session's items exactly in the sampled softmax. On
    every prefix of the last 10 % (68,956; ``run_validation``, 4 epochs) it did not help: model alone
    50.63 / 18.24 with it, 51.23 / 18.29 without; the re-clicks are already ranked well by the
    last-item and attention readout, and what demoted them was the fusion (see ``FusionParams``).

    Training uses a sampled softmax (``negatives``) because on 2 shared CPU cores a full softmax
    over 43k items runs ~5x slower per step and would allow barely two epochs in the budget;
    scoring always ranks all items."""

    dim: int = 100
    max_len: int = 20
    temperature: float = 12.0
    dropout: float = 0.1
    epochs: int = 6
    batch_size: int = 512
    lr: float = 1e-3
    lr_final: float = 1e-4  # cosine decay from lr to lr_final over all steps
    negatives: int = 4096  # uniform sampled softmax with this many shared negatives; 0 = full softmax
    seed: int = 0
    repeat: bool = False  # learned score bonus for items already in the session (see ``repeat_bias``)


@dataclass(frozen=True)
class FusionParams:
    """``mode="log"``: log p_model + beta · log(eps + stats_norm); ``mode="mix"``: the convex
    combination (1 - beta) · p_model + beta · stats_norm. beta and eps chosen on the validation
    split (grid beta 0.05-0.5 × eps 1e-3-0.1): with the 6-epoch model the fusion is nearly neutral
    (52.40 / 18.45 vs 52.36 / 18.50 alone); larger beta buys P@20 at the cost of MRR@20.

    That neutrality was the statistics demoting re-clicks. ``keep_repeats`` (on) stops it; on every
    prefix of the last 10 % of train sessions (68,956 prefixes, ``run_validation``, 4-epoch model:
    alone 51.23 / 18.29) plain beta 0.1: 51.36 / 18.28; keep_repeats beta 0.1: 51.46 / 18.36,
    beta 0.2: 51.74 / 18.43 (with the ``repeat`` model: beta 0.05 / 0.1 / 0.2 gave 18.30 / 18.34 /
    18.42 MRR@20), hence beta 0.2. A later, wider grid on the same split rose further (beta 0.5 /
    0.7 / 1.0 with eps 3e-3: 18.59 / 18.65 / 18.70, P@20 52.53 / 52.76 / 52.83). Widened once more
    (2026-12-03, same split, 4-epoch model alone 51.23 / 18.29; beta 0.2 / 1.0 / 1.5 / 2.0 / 3.0 ×
    eps 1e-3 / 3e-3; benchmarks/results/sessions-diginetica-validation-2026-12-03.json): MRR@20
    18.46-18.48 / 18.70 / 18.73 / 18.73 / 18.72, P@20 best at beta 1.5, eps 3e-3 (52.85 / 18.73):
    the default since then, chosen on the validation split only and scored on the test file once."""

    beta: float = 1.5
    eps: float = 3e-3
    mode: str = "log"
    # the statistics leave out self-transitions, so they give an item the session already holds no
    # score of its own; with ``keep_repeats`` such items get the row's best statistics term instead of
    # the floor, so the statistics never demote a re-click the model predicts (needs the prefixes)
    keep_repeats: bool = True


def _build_model(n_items: int, p: ModelParams) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Niser(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = p.dim
            self.emb = nn.Embedding(n_items + 1, d, padding_idx=0, sparse=True)
            self.pos = nn.Embedding(p.max_len, d)
            self.w_last = nn.Linear(d, d)
            self.w_item = nn.Linear(d, d, bias=False)
            self.q = nn.Linear(d, 1, bias=False)
            self.out = nn.Linear(2 * d, d, bias=False)
            self.drop = nn.Dropout(p.dropout)
            std = 1.0 / math.sqrt(d)
            for w in self.parameters():
                nn.init.uniform_(w, -std, std)
            if p.repeat:
                # a bonus for re-clicking an item of the session: one per distance from the end of the
                # item's latest click, plus a session-dependent shift (some sessions re-click, some browse)
                self.rep_pos = nn.Parameter(torch.zeros(p.max_len))
                self.rep_gate = nn.Linear(d, 1)
                nn.init.zeros_(self.rep_gate.weight)
                nn.init.zeros_(self.rep_gate.bias)

        def items(self, ids: torch.Tensor) -> torch.Tensor:
            """Normalised embeddings of 0-based item indices (a lookup, so gradients stay sparse)."""
            return F.normalize(self.emb(ids + 1), dim=-1)

        def session(self, x: torch.Tensor) -> torch.Tensor:
            mask = (x > 0).unsqueeze(-1).float()
            h = F.normalize(self.emb(x), dim=-1) * mask
            h = self.drop(h)
            last = h[:, -1]
            hp = (h + self.pos.weight.unsqueeze(0)) * mask
            alpha = self.q(torch.sigmoid(self.w_last(last).unsqueeze(1) + self.w_item(hp))) * mask
            sg = (alpha * hp).sum(1)
            s = self.out(torch.cat([sg, last], dim=-1))
            return F.normalize(s, dim=-1)

        def repeat_bias(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(bias, keep), both (batch, max_len): the bonus for re-clicking the item in each column,
            kept only at the latest click of each distinct item (padding and earlier duplicates are off)."""
            length = x.shape[1]
            later = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
            dup = ((x.unsqueeze(2) == x.unsqueeze(1)) & later).any(-1)
            keep = (x > 0) & ~dup
            bias = self.rep_pos[:length].flip(0).unsqueeze(0) + self.rep_gate(s)
            return bias * keep, keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Logits over all items."""
            s = self.session(x)
            logits = p.temperature * s @ self.items(torch.arange(n_items)).T
            if p.repeat:
                bias, _ = self.repeat_bias(x, s)
                logits = logits.scatter_add(1, (x - 1).clamp(min=0), bias)
            return logits

        def loss(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            if p.negatives <= 0 or p.negatives >= n_items:
                return F.cross_entropy(self(x), y)
            # sampled softmax: K uniform negatives shared by the batch, corrected by log((N-1)/K) so the
            # sum over them estimates the full denominator; a negative equal to the row's target is masked
            s = self.session(x)
            if not p.repeat:
                neg = torch.randint(0, n_items, (p.negatives,), generator=gen)
            else:
                neg = torch.randperm(n_items, generator=gen)[: p.negatives]
            pos_logit = p.temperature * (s * self.items(y)).sum(-1, keepdim=True)
            neg_logit = p.temperature * s @ self.items(neg).T + math.log((n_items - 1) / p.negatives)
            neg_logit = neg_logit.masked_fill(neg.unsqueeze(0) == y.unsqueeze(1), float("-inf"))
            if not p.repeat:
                logits = torch.cat([pos_logit, neg_logit], dim=1)
                return F.cross_entropy(logits, torch.zeros_like(y))
            # the session's own items are scored exactly (with their bonus) instead of being sampled:
            # a sampled negative that is in the session is masked, and the target is only the positive
            bias, keep = self.repeat_bias(x, s)
            is_target = x == (y + 1).unsqueeze(1)
            pos_logit = pos_logit + (bias * is_target).sum(-1, keepdim=True)
            sess_logit = p.temperature * (s.unsqueeze(1) * self.items((x - 1).clamp(min=0))).sum(-1) + bias
            sess_logit = sess_logit.masked_fill(~keep | is_target, float("-inf"))
            slot = torch.full((n_items + 1,), -1, dtype=torch.long)
            slot[neg + 1] = torch.arange(p.negatives)
            hit = slot[x]
            rows = torch.arange(len(x)).unsqueeze(1).expand_as(hit)
            in_session = torch.zeros_like(neg_logit, dtype=torch.bool)
            in_session[rows[(hit >= 0) & (x > 0)], hit[(hit >= 0) & (x > 0)]] = True
            neg_logit = neg_logit.masked_fill(in_session, float("-inf"))
            logits = torch.cat([pos_logit, sess_logit, neg_logit], dim=1)
            return F.cross_entropy(logits, torch.zeros_like(y))

    return Niser()


class SessionModel:
    """A trained NISER-style model; ``log_probs(prefixes)`` scores all items (column i-1 = id i)."""

    def __init__(self, n_items: int, params: ModelParams | None = None) -> None:
        self.n_items = n_items
        self.params = params or ModelParams()
        self.net: Any = None
        self.epoch_seconds: list[float] = []

    def fit(
        self,
        sessions: Sequence[Sequence[int]],
        progress: bool = False,
        on_epoch: Callable[[int, SessionModel], None] | None = None,
    ) -> SessionModel:
        import torch
        from tqdm import tqdm

        p = self.params
        random.seed(p.seed)
        np.random.seed(p.seed)
        torch.manual_seed(p.seed)
        prefixes, targets = augment(sessions)
        x_all = torch.from_numpy(pad_right(prefixes, p.max_len))
        y_all = torch.tensor(targets, dtype=torch.long) - 1
        n = len(y_all)
        self.net = _build_model(self.n_items, p)
        dense = [w for name, w in self.net.named_parameters() if name != "emb.weight"]
        opts = [torch.optim.SparseAdam([self.net.emb.weight], lr=p.lr), torch.optim.Adam(dense, lr=p.lr)]
        steps_per_epoch = max(1, math.ceil(n / p.batch_size))
        total = steps_per_epoch * p.epochs
        floor = p.lr_final / p.lr
        scheds = [
            torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            )
            for opt in opts
        ]
        gen = torch.Generator().manual_seed(p.seed)
        for epoch in range(p.epochs):
            self.net.train()
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=gen)
            bar = tqdm(
                range(steps_per_epoch), desc=f"epoch {epoch + 1}/{p.epochs}", disable=not progress, mininterval=2.0
            )
            running = 0.0
            for step in bar:
                idx = order[step * p.batch_size : (step + 1) * p.batch_size]
                loss = self.net.loss(x_all[idx], y_all[idx], gen)
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt, sched in zip(opts, scheds, strict=True):
                    opt.step()
                    sched.step()
                value = float(loss.detach())
                running = 0.98 * running + 0.02 * value if step else value
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{running:.3f}")
            self.epoch_seconds.append(time.perf_counter() - t0)
            if on_epoch is not None:
                on_epoch(epoch + 1, self)
        self.net.eval()
        return self

    def log_probs(self, prefixes: Sequence[Sequence[int]]) -> np.ndarray:
        import torch

        if self.net is None:
            raise RuntimeError("SessionModel.fit first.")
        self.net.eval()
        with torch.no_grad():
            x = torch.from_numpy(pad_right(prefixes, self.params.max_len))
            x = x.masked_fill(x > self.n_items, 0)
            return torch.log_softmax(self.net(x), dim=-1).numpy()


def fuse(
    log_probs: np.ndarray,
    stats: np.ndarray,
    fusion: FusionParams,
    prefixes: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Fused scores (see ``FusionParams``); rows without statistics keep the model's order.
    ``fusion.keep_repeats`` acts on the items of ``prefixes`` (item ids, column = id - 1); without
    ``prefixes`` there is no session to read and the fusion is the plain one."""
    if fusion.beta == 0:
        return log_probs
    total = stats.sum(axis=1, keepdims=True)
    norm = np.divide(stats, total, out=np.zeros_like(stats), where=total > 0)
    if fusion.keep_repeats and prefixes is not None:
        best = norm.max(axis=1)
        rows = [r for r, p in enumerate(prefixes) for i in p if 1 <= i <= norm.shape[1]]
        cols = [i - 1 for p in prefixes for i in p if 1 <= i <= norm.shape[1]]
        norm = norm.copy()
        norm[rows, cols] = np.maximum(norm[rows, cols], best[rows])
    if fusion.mode == "mix":
        return np.asarray((1.0 - fusion.beta) * np.exp(log_probs) + fusion.beta * norm)
    return np.asarray(log_probs + fusion.beta * np.log(fusion.eps + norm))


def iter_batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def params_dict(*params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in params:
        out[type(p).__name__] = asdict(p)
    return out
