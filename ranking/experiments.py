"""Online experiments on the ranking: A/B assignment of sessions to variants, and team-draft
interleaving.

**Assignment.** A session belongs to one variant of an experiment for its whole life:
``bucket = SHA-256(experiment name, NUL, session key)`` read as a number in [0, 1), and the
variants' shares cut [0, 1) into consecutive ranges in the order the spec lists them. The key is
the session's pseudonym (what the session store and the event log name it by), so the hash sees
nothing of the shopper but that, and the same session gets the same variant in every process and
after every restart; a different experiment name reshuffles the sessions independently.

**Configuration.** ``SHOPASSIST_EXPERIMENT="NAME:VARIANT=SHARE,VARIANT=SHARE"``, e.g.
``rank1:fusion=50,no-behaviour=50`` (shares are relative weights; the first variant is the
control). Unset (the default): no experiment, and nothing the agent does changes.

**Variants** are ranking configurations the agent really has (``RANKINGS``):

* ``fusion``: today's ranking: retrieval's candidates re-ordered by the behaviour ranker
  (``ranking.ranker.Ranker.rank``: text, shared knowledge, similarity, popularity ... and MMR);
* ``no-behaviour``: the retrieval order as it is, without the behaviour ranker.

A later learned ranker adds its name here and its branch in ``ShoppingAgent.search``.

**Events.** Every event of a session in an experiment carries ``variant="NAME:VARIANT"``
(``Event.variant``); ``evals.ab`` reads the log back per variant.

**Interleaving** (team draft, Radlinski, Kurup & Joachims, CIKM 2008): both rankings are merged
into one list; in each round the team with fewer picks so far (a coin decides a tie) adds its
highest-ranked item not yet shown. Each shown item remembers its team, and a click is credited to
the team of the item clicked; the team with more credited clicks in a session wins it. In the
event log an interleaved session's events carry ``NAME:interleaved`` and a credited click
``NAME:TEAM``. (The live agent serves A/B variants; interleaving is used by the replay,
``benchmarks/replay_ab.py``, and ``evals.ab`` reports it.)
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shopassist.errors import UsageError

ENV = "SHOPASSIST_EXPERIMENT"
INTERLEAVED = "interleaved"  # the arm of a session shown an interleaved list (its clicks carry the team)
FUSION = "fusion"
NO_BEHAVIOUR = "no-behaviour"
# the ranking configurations the agent can serve, and whether each applies the behaviour ranker
RANKINGS: dict[str, bool] = {FUSION: True, NO_BEHAVIOUR: False}

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def bucket(experiment: str, key: str) -> float:
    """Where a session falls in [0, 1) for this experiment: stable across processes (SHA-256,
    not Python's salted ``hash``) and independent between experiments."""
    digest = hashlib.sha256(f"{experiment}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def tag(experiment: str, variant: str) -> str:
    """The value of ``Event.variant`` for this experiment's variant."""
    return f"{experiment}:{variant}"


def parse_tag(value: str) -> tuple[str, str]:
    """``"NAME:VARIANT"`` -> ``(NAME, VARIANT)``."""
    experiment, sep, variant = value.partition(":")
    if not sep or not NAME.match(experiment) or not NAME.match(variant):
        raise ValueError(f"not an experiment tag EXPERIMENT:VARIANT: {value!r}")
    return experiment, variant


@dataclass(frozen=True)
class Experiment:
    """An A/B experiment: its name and its variants with their shares (the first is the control)."""

    name: str
    variants: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise UsageError(f"experiment name {self.name!r}: use 1-64 letters, digits or . _ -")
        if len(self.variants) < 2:
            raise UsageError(f"experiment {self.name!r} needs at least two variants")
        names = [v for v, _ in self.variants]
        if len(set(names)) != len(names):
            raise UsageError(f"experiment {self.name!r} names a variant twice: {', '.join(names)}")
        for variant, share in self.variants:
            if not NAME.match(variant) or variant == INTERLEAVED:
                raise UsageError(f"variant name {variant!r}: use 1-64 letters, digits or . _ - (not {INTERLEAVED!r})")
            if not share > 0:
                raise UsageError(f"variant {variant!r} needs a positive share (got {share})")

    @classmethod
    def parse(cls, spec: str, known: Iterable[str] | None = None) -> Experiment:
        """``"NAME:VARIANT=SHARE,VARIANT=SHARE"`` (a variant without ``=SHARE`` gets share 1);
        with ``known``, every variant must be one of those names."""
        name, sep, rest = spec.strip().partition(":")
        if not sep or not rest.strip():
            raise UsageError(
                f"experiment {spec!r}: write NAME:VARIANT=SHARE,VARIANT=SHARE, e.g. rank1:fusion=50,no-behaviour=50 ({ENV})"
            )
        variants = []
        for part in rest.split(","):
            variant, eq, share = part.strip().partition("=")
            try:
                value = float(share) if eq else 1.0
            except ValueError:
                raise UsageError(f"experiment {spec!r}: the share of {variant!r} is not a number: {share!r}") from None
            variants.append((variant.strip(), value))
        experiment = cls(name.strip(), tuple(variants))
        if known is not None:
            allowed = list(known)
            unknown = [v for v in experiment.names if v not in allowed]
            if unknown:
                raise UsageError(
                    f"experiment {experiment.name!r}: unknown variant {unknown[0]!r}; the rankings are "
                    f"{', '.join(allowed)} ({ENV})"
                )
        return experiment

    @property
    def names(self) -> list[str]:
        return [v for v, _ in self.variants]

    @property
    def control(self) -> str:
        return self.variants[0][0]

    def spec(self) -> str:
        return f"{self.name}:" + ",".join(f"{v}={s:g}" for v, s in self.variants)

    def assign(self, key: str) -> str:
        """The variant of the session whose pseudonym is ``key``."""
        total = sum(s for _, s in self.variants)
        point = bucket(self.name, key) * total
        upto = 0.0
        for variant, share in self.variants:
            upto += share
            if point < upto:
                return variant
        return self.variants[-1][0]  # float rounding at the very top

    def tag_for(self, key: str) -> str:
        """``Event.variant`` for the session whose pseudonym is ``key``."""
        return tag(self.name, self.assign(key))


def configured_experiment(environ: Mapping[str, str] | None = None) -> Experiment | None:
    """The experiment ``SHOPASSIST_EXPERIMENT`` configures for the agent (None when unset); its
    variants must be rankings the agent serves (``RANKINGS``)."""
    spec = (os.environ if environ is None else environ).get(ENV, "").strip()
    return Experiment.parse(spec, known=RANKINGS) if spec else None


def uses_behaviour(variant: str) -> bool:
    """Whether the ranking ``variant`` re-orders with the behaviour ranker."""
    try:
        return RANKINGS[variant]
    except KeyError:
        raise UsageError(f"unknown ranking variant {variant!r}: one of {', '.join(RANKINGS)}") from None


# -- team-draft interleaving -------------------------------------------------------------------------
@dataclass
class Interleaving:
    """One interleaved list: the items in the order shown and the team each came from."""

    items: list[Hashable] = field(default_factory=list)
    teams: dict[Hashable, str] = field(default_factory=dict)

    def credit(self, clicked: Iterable[Hashable]) -> Counter[str]:
        """Clicks per team (a click on an item that was not shown credits nobody)."""
        return Counter(self.teams[item] for item in clicked if item in self.teams)


def team_draft(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    k: int,
    rng: random.Random,
    teams: tuple[str, str] = ("A", "B"),
) -> Interleaving:
    """Team-draft interleaving of rankings ``a`` and ``b`` into at most ``k`` items: each round
    the team with fewer picks (``rng`` tosses a coin on a tie) adds its best item not yet in the
    list; a team with nothing left lets the other pick. Pass a ``random.Random`` seeded per
    session (and query) so a session sees the same list again."""
    out = Interleaving()
    count = {teams[0]: 0, teams[1]: 0}
    lists = {teams[0]: list(a), teams[1]: list(b)}
    pos = {teams[0]: 0, teams[1]: 0}

    def next_of(team: str) -> Hashable | None:
        ranking = lists[team]
        while pos[team] < len(ranking) and ranking[pos[team]] in out.teams:
            pos[team] += 1
        return ranking[pos[team]] if pos[team] < len(ranking) else None

    while len(out.items) < k:
        first, second = teams
        if count[first] > count[second] or (count[first] == count[second] and rng.random() < 0.5):
            first, second = second, first
        item, team = next_of(first), first
        if item is None:
            item, team = next_of(second), second
        if item is None:
            break
        out.items.append(item)
        out.teams[item] = team
        count[team] += 1
    return out


def session_winner(credited: Counter[str], teams: tuple[str, str]) -> str | None:
    """The team with more credited clicks in a session; None for a tie (or no click)."""
    a, b = credited.get(teams[0], 0), credited.get(teams[1], 0)
    return teams[0] if a > b else teams[1] if b > a else None
