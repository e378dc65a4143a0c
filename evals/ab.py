"""Online evaluation: read an event log back per experiment variant (``shopassist eval ab``).

An event of a session in an online experiment carries ``variant="EXPERIMENT:VARIANT"``
(``ranking.experiments``). A session belongs to the variant its tagged events name; its events
without a tag (clicks a client sent through the API, say) count for that variant too. A session
whose events name two variants of one A/B experiment is left out and counted (``mixed_sessions``).

Per variant of an A/B experiment:

* ``sessions``, ``searches``, ``clicks``;
* ``session_ctr``: share of sessions with a click; ``add_to_cart_rate`` and ``purchase_rate``:
  share of sessions with one. Each with a Wilson score interval, and vs the control the
  difference with Newcombe's hybrid score interval (method 10, built from the two Wilson
  intervals) and a two-sided pooled z-test p-value;
* ``search_ctr``: share of searches followed by a click before the session's next search. Searches
  of one session are not independent, so its interval (and the difference's) is a percentile
  bootstrap over sessions (seeded; ``bootstrap`` resamples).

An interleaving experiment (sessions tagged ``EXPERIMENT:interleaved``, clicks credited to a team
as ``EXPERIMENT:TEAM``) gets, per team, the sessions it won (more credited clicks than the other
team), the ties, each team's win rate over the decided sessions with its Wilson interval, and the
two-sided exact sign-test p-value of "both teams are equally good".

The log is read, never written: an SQLite event log (``HOME/events.sqlite``) opened read-only, or
a JSONL file of events (one ``Event`` per line).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ranking.events import validate_event
from ranking.experiments import FUSION, INTERLEAVED, parse_tag
from shopassist.errors import UsageError
from shopassist.models import Event, EventType


# -- reading the log ---------------------------------------------------------------------------------
def read_events(path: Path) -> list[Event]:
    """Every event of the log at ``path`` in log order: an SQLite event log (read-only) or JSONL."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no event log at {path}: give --events PATH or the --home whose events.sqlite to read")
    if path.suffix.lower() in (".jsonl", ".json"):
        events = []
        with open(path, encoding="utf-8") as handle:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    events.append(validate_event(json.loads(line)))
                except (ValueError, TypeError) as exc:
                    raise UsageError(f"{path}:{n}: not an event: {exc}") from None
        return events
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
            if not columns:
                raise UsageError(f"{path} is not an event log (no events table)")
            variant = "variant" if "variant" in columns else "NULL"
            rows = conn.execute(
                f"SELECT seq, ts, session, type, product, query, {variant} FROM events ORDER BY seq"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise UsageError(
            f"{path} is not an SQLite event log, or cannot be read ({exc}); a JSONL log must end in .jsonl"
        ) from None
    return [
        Event.model_construct(
            seq=seq, ts=ts, session_id=session, type=EventType(type_), product_id=product, query=query, variant=tag
        )
        for seq, ts, session, type_, product, query, tag in rows
    ]


# -- statistics --------------------------------------------------------------------------------------
def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)


def newcombe(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p2 - p1, from the two Wilson intervals."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p2 - p1
    return d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled z-test of p1 = p2 (1.0 when it cannot be computed)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x2 / n2 - x1 / n1) / se
    return 2 * NormalDist().cdf(-z)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test of wins vs losses (ties left out) under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Bootstrap replicates of sum(num)/sum(den), resampling sessions (NaN where den sums to 0)."""
    n = len(num)
    out = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, n, n)
        d = den[idx].sum()
        out[b] = num[idx].sum() / d if d else np.nan
    return out


# -- sessions ----------------------------------------------------------------------------------------
@dataclass
class SessionStats:
    arms: set[str] = field(default_factory=set)
    searches: int = 0
    searches_clicked: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    team_clicks: Counter[str] = field(default_factory=Counter)


def session_stats(events: Iterable[Event], experiment: str) -> dict[str, SessionStats]:
    """Per session in ``experiment``: its arms and what it did (its untagged events included;
    events tagged for another experiment left out)."""
    by_session: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_session[e.session_id].append(e)
    out: dict[str, SessionStats] = {}
    for session, evs in by_session.items():
        tags = [(e, parse_tag(e.variant)) if e.variant else (e, None) for e in evs]
        if not any(t is not None and t[0] == experiment for _, t in tags):
            continue
        stats = SessionStats()
        # a session shown interleaved lists: its clicks' arms are the teams they are credited to
        interleaved = any(t == (experiment, INTERLEAVED) for _, t in tags)
        open_search = False  # the last search has no click yet
        for e, t in tags:
            if t is not None and t[0] != experiment:
                continue
            arm = t[1] if t is not None else None
            credit = interleaved and arm not in (None, INTERLEAVED) and e.type == EventType.click
            if arm is not None and not credit:
                stats.arms.add(arm)
            if e.type == EventType.search:
                stats.searches += 1
                open_search = True
            elif e.type == EventType.click:
                stats.clicks += 1
                if open_search:
                    stats.searches_clicked += 1
                    open_search = False
                if credit and arm is not None:
                    stats.team_clicks[arm] += 1
            elif e.type == EventType.add_to_cart:
                stats.carts += 1
            elif e.type == EventType.purchase:
                stats.purchases += 1
        out[session] = stats
    return out


def experiments_in(events: Iterable[Event]) -> list[str]:
    return sorted({parse_tag(e.variant)[0] for e in events if e.variant})


# -- the report --------------------------------------------------------------------------------------
def _rate(x: int, n: int, confidence: float) -> dict[str, Any]:
    lo, hi = wilson(x, n, confidence)
    return {"rate": round(x / n, 6) if n else None, "lo": round(lo, 6), "hi": round(hi, 6), "count": x, "n": n}


def _diff(x0: int, n0: int, x1: int, n1: int, confidence: float) -> dict[str, Any]:
    lo, hi = newcombe(x0, n0, x1, n1, confidence)
    return {
        "diff": round(x1 / n1 - x0 / n0, 6),
        "lo": round(lo, 6),
        "hi": round(hi, 6),
        "p_value": _sig(two_proportion_p(x0, n0, x1, n1)),
    }


def _sig(p: float) -> float:
    """A p-value to 4 significant digits (a tiny one stays tiny, not 0)."""
    return float(f"{p:.4g}")


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    a = (1 - confidence) / 2 * 100
    return round(float(np.percentile(values, a)), 6), round(float(np.percentile(values, 100 - a)), 6)


SESSION_RATES = (("session_ctr", "clicks"), ("add_to_cart_rate", "carts"), ("purchase_rate", "purchases"))


def ab_report(
    events: Sequence[Event],
    experiment: str | None = None,
    *,
    control: str | None = None,
    confidence: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The report of one experiment in ``events`` (the only one when ``experiment`` is None)."""
    if not events:
        raise UsageError("the event log holds no events")
    found = experiments_in(events)
    if not found:
        raise UsageError(
            "no event in the log carries an experiment variant: run the assistant with "
            "SHOPASSIST_EXPERIMENT=NAME:VARIANT=SHARE,... to start one"
        )
    if experiment is None:
        if len(found) > 1:
            raise UsageError(f"the log holds experiments {', '.join(found)}: choose one with --experiment")
        experiment = found[0]
    elif experiment not in found:
        raise UsageError(f"no experiment {experiment!r} in the log; it holds: {', '.join(found)}")

    stats = session_stats(events, experiment)
    interleaved = {s: st for s, st in stats.items() if INTERLEAVED in st.arms}
    ab = {s: st for s, st in stats.items() if INTERLEAVED not in st.arms}
    mixed = sum(1 for st in ab.values() if len(st.arms) > 1)
    arms: dict[str, list[SessionStats]] = defaultdict(list)
    for st in ab.values():
        if len(st.arms) == 1:
            arms[next(iter(st.arms))].append(st)
    result: dict[str, Any] = {
        "experiment": experiment,
        "experiments_in_log": found,
        "events": len(events),
        "confidence": confidence,
        "sessions": len(stats),
        "mixed_sessions": mixed,
        "kind": "interleaving",
        "control": None,
        "variants": {},
    }
    if arms:
        result.update(_ab_part(arms, control, confidence, bootstrap, seed))
    if interleaved:
        result["interleaving"] = _interleaving_part(interleaved, control, confidence)
    return result


def _ab_part(
    arms: dict[str, list[SessionStats]], control: str | None, confidence: float, bootstrap: int, seed: int
) -> dict[str, Any]:
    names = sorted(arms)
    if control is None:
        control = FUSION if FUSION in arms else names[0]
    elif control not in arms:
        raise UsageError(f"no variant {control!r} in this experiment; it has: {', '.join(names)}")
    names = [control, *(n for n in names if n != control)]
    rng = np.random.default_rng(seed)
    arrays = {
        name: (
            np.array([s.searches_clicked for s in arms[name]], dtype=np.float64),
            np.array([s.searches for s in arms[name]], dtype=np.float64),
        )
        for name in names
    }
    boots = {name: bootstrap_ratio(*arrays[name], rng, bootstrap) for name in names}
    variants: dict[str, Any] = {}
    for name in names:
        group = arms[name]
        n = len(group)
        clicked, searches = arrays[name]
        row: dict[str, Any] = {
            "sessions": n,
            "searches": int(searches.sum()),
            "clicks": sum(s.clicks for s in group),
        }
        counts = {attr: sum(1 for s in group if getattr(s, attr) > 0) for _, attr in SESSION_RATES}
        for metric, attr in SESSION_RATES:
            row[metric] = _rate(counts[attr], n, confidence)
        lo, hi = _percentiles(boots[name], confidence)
        total = float(searches.sum())
        row["search_ctr"] = {
            "rate": round(float(clicked.sum()) / total, 6) if total else None,
            "lo": lo,
            "hi": hi,
            "count": int(clicked.sum()),
            "n": int(total),
        }
        if name != control:
            base = arms[control]
            row["vs_control"] = {}
            for metric, attr in SESSION_RATES:
                x0 = sum(1 for s in base if getattr(s, attr) > 0)
                row["vs_control"][metric] = _diff(x0, len(base), counts[attr], n, confidence)
            c_clicked, c_searches = arrays[control]
            if total and c_searches.sum():
                dlo, dhi = _percentiles(boots[name] - boots[control], confidence)
                row["vs_control"]["search_ctr"] = {
                    "diff": round(float(clicked.sum()) / total - float(c_clicked.sum() / c_searches.sum()), 6),
                    "lo": dlo,
                    "hi": dhi,
                }
        variants[name] = row
    return {"kind": "ab", "control": control, "variants": variants, "bootstrap": bootstrap, "seed": seed}


def _interleaving_part(sessions: dict[str, SessionStats], control: str | None, confidence: float) -> dict[str, Any]:
    teams = sorted({t for st in sessions.values() for t in st.team_clicks})
    if len(teams) > 2:
        raise UsageError(f"interleaving compares two teams; the log credits clicks to {', '.join(teams)}")
    if control is None or control not in teams:
        control = FUSION if FUSION in teams else (teams[0] if teams else None)
    order = [t for t in ([control] if control else []) + teams if t is not None]
    order = list(dict.fromkeys(order))
    wins: Counter[str] = Counter()
    ties = with_clicks = 0
    for st in sessions.values():
        if not st.team_clicks:
            continue
        with_clicks += 1
        counts = [st.team_clicks.get(t, 0) for t in order] + [0] * (2 - len(order))
        if counts[0] == counts[1]:
            ties += 1
        else:
            wins[order[0] if counts[0] > counts[1] else order[1]] += 1
    decided = sum(wins.values())
    out: dict[str, Any] = {
        "sessions": len(sessions),
        "sessions_with_credited_clicks": with_clicks,
        "teams": order,
        "wins": {t: wins.get(t, 0) for t in order},
        "ties": ties,
        "win_rate": {t: _rate(wins.get(t, 0), decided, confidence) for t in order},
        "credited_clicks": {t: sum(st.team_clicks.get(t, 0) for st in sessions.values()) for t in order},
    }
    if len(order) == 2:
        out["sign_test_p"] = _sig(sign_test_p(wins.get(order[0], 0), wins.get(order[1], 0)))
    return out


def run_ab(
    path: Path,
    experiment: str | None = None,
    *,
    control: str | None = None,
    confidence: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``ab_report`` of the event log at ``path``."""
    events = read_events(path)
    if not events:
        raise UsageError(f"the event log {path} holds no events")
    report = ab_report(events, experiment, control=control, confidence=confidence, bootstrap=bootstrap, seed=seed)
    return {"log": str(path), **report}
