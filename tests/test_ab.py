"""Online experiments: assignment of sessions to ranking variants, team-draft interleaving, the
variant on every event, the agent's switch, and the ``eval ab`` report (known answers)."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from evals.ab import ab_report, newcombe, run_ab, sign_test_p, wilson
from ranking.events import SQLiteEventLog
from ranking.experiments import (
    ENV,
    FUSION,
    NO_BEHAVIOUR,
    RANKINGS,
    Experiment,
    bucket,
    configured_experiment,
    session_winner,
    team_draft,
)
from shopassist.errors import UsageError
from shopassist.models import Event

REPO = Path(__file__).resolve().parents[1]


# -- assignment --------------------------------------------------------------------------------------
def test_assignment_is_deterministic_and_roughly_balanced():
    exp = Experiment.parse("rank1:fusion=50,no-behaviour=50", known=RANKINGS)
    keys = [f"anon-{i:032x}" for i in range(20_000)]
    first = [exp.assign(k) for k in keys]
    again = Experiment.parse("rank1:fusion=50,no-behaviour=50")
    assert first == [again.assign(k) for k in keys]  # a new object (a restart) assigns the same
    share = Counter(first)[FUSION] / len(keys)
    assert 0.48 < share < 0.52  # binomial sd 0.0035: six sd either side
    assert exp.control == FUSION and exp.tag_for(keys[0]) == f"rank1:{first[0]}"

    uneven = Experiment.parse("rank1:fusion=9,no-behaviour=1")
    assert 0.88 < Counter(uneven.assign(k) for k in keys)[FUSION] / len(keys) < 0.92
    # a session in the control of the 50/50 split stays in it when the treatment shrinks to 10%
    # (same experiment name, same bucket: only sessions near the cut move)
    assert all(uneven.assign(k) == FUSION for k, v in zip(keys, first, strict=True) if v == FUSION)

    other = Experiment.parse("rank2:fusion=50,no-behaviour=50")
    agree = sum(a == other.assign(k) for k, a in zip(keys, first, strict=True)) / len(keys)
    assert 0.47 < agree < 0.53  # another experiment reshuffles independently


def test_assignment_is_the_same_in_another_process_with_another_hash_seed():
    keys = ["anon-0123456789abcdef0123456789abcdef", "s1", "shopper-42"]
    code = (
        "import json,sys; from ranking.experiments import Experiment, bucket; "
        "e = Experiment.parse('rank1:fusion=50,no-behaviour=50'); "
        f"print(json.dumps([[e.assign(k), bucket('rank1', k)] for k in {keys!r}]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    exp = Experiment.parse("rank1:fusion=50,no-behaviour=50")
    assert json.loads(out.stdout) == [[exp.assign(k), bucket("rank1", k)] for k in keys]


def test_experiment_specs_are_checked():
    assert configured_experiment({}) is None
    assert configured_experiment({ENV: "  "}) is None
    exp = configured_experiment({ENV: "rank1:fusion=70,no-behaviour=30"})
    assert exp is not None and exp.names == [FUSION, NO_BEHAVIOUR] and exp.spec() == "rank1:fusion=70,no-behaviour=30"
    for bad, words in [
        ("rank1", "NAME:VARIANT"),
        ("rank1:fusion=50", "two variants"),
        ("rank1:fusion=50,learned=50", "unknown variant 'learned'"),
        ("rank1:fusion=x,no-behaviour=50", "not a number"),
        ("rank1:fusion=0,no-behaviour=50", "positive share"),
        ("rank1:fusion=1,fusion=2", "twice"),
        ("bad name:fusion=1,no-behaviour=1", "experiment name"),
    ]:
        with pytest.raises(UsageError, match=words):
            configured_experiment({ENV: bad})


# -- interleaving -------------------------------------------------------------------------------------
def test_team_draft_interleaving_properties():
    a = ["a1", "a2", "s1", "a3", "s2", "a4"]
    b = ["b1", "s1", "b2", "s2", "b3"]
    for seed in range(200):
        merged = team_draft(a, b, 6, random.Random(seed))
        items = merged.items
        assert len(items) == 6 and len(set(items)) == 6  # no item twice
        assert set(items) <= set(a) | set(b) and set(merged.teams) == set(items)
        assert {items[0], items[1]} == {"a1", "b1"}  # each team's best comes first, in some order
        for n in range(1, 7):  # after every pick the teams differ by at most one item
            count = Counter(merged.teams[i] for i in items[:n])
            assert abs(count["A"] - count["B"]) <= 1
        for item, team in merged.teams.items():  # a team only contributes items of its own ranking
            assert item in (a if team == "A" else b)
        # each team's items appear in the order of its own ranking
        for team, ranking in (("A", a), ("B", b)):
            picked = [i for i in items if merged.teams[i] == team]
            assert picked == sorted(picked, key=ranking.index)
    # the coin: over many sessions each team picks first about half the time
    firsts = Counter(team_draft(a, b, 2, random.Random(s)).teams["a1"] == "A" for s in range(2000))
    assert firsts[True] == 2000  # a1 is always team A's
    firsts_team = Counter(team_draft(a, b, 1, random.Random(s)).items[0] for s in range(2000))
    assert 900 < firsts_team["a1"] < 1100
    # the same seed gives the same list (a session sees the same list again)
    assert team_draft(a, b, 5, random.Random("s:1")).items == team_draft(a, b, 5, random.Random("s:1")).items


def test_identical_rankings_interleave_to_themselves_and_short_lists_run_out():
    ranking = ["x", "y", "z", "w"]
    for seed in range(50):
        assert team_draft(ranking, ranking, 4, random.Random(seed)).items == ranking
    merged = team_draft(["p"], ["q", "r", "s"], 10, random.Random(0))
    assert sorted(merged.items) == ["p", "q", "r", "s"]  # a team with nothing left lets the other pick
    assert merged.teams["p"] == "A" and {merged.teams[i] for i in "qrs"} == {"B"}


def test_clicks_are_credited_to_the_team_that_contributed_the_item():
    merged = team_draft(["a1", "a2", "a3"], ["b1", "b2", "b3"], 4, random.Random(3), teams=(FUSION, NO_BEHAVIOUR))
    credit = merged.credit(["a1", "a2", "b1", "zz"])  # "zz" was not shown: nobody's
    assert credit == Counter({FUSION: 2, NO_BEHAVIOUR: 1})
    assert session_winner(credit, (FUSION, NO_BEHAVIOUR)) == FUSION
    assert session_winner(merged.credit(["a1", "b1"]), (FUSION, NO_BEHAVIOUR)) is None
    assert session_winner(Counter(), (FUSION, NO_BEHAVIOUR)) is None


# -- statistics with published answers -----------------------------------------------------------------
def test_intervals_match_published_examples():
    # Newcombe (1998), Statistics in Medicine 17: Wilson score interval of 81/263, and the
    # hybrid score interval (method 10) of 56/70 - 48/80
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    lo, hi = newcombe(48, 80, 56, 70)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    assert wilson(0, 0) == (0.0, 1.0)
    # exact two-sided sign test: 8 wins, 2 losses -> 2 * (1 + 10 + 45) / 1024
    assert sign_test_p(8, 2) == pytest.approx(112 / 1024)
    assert sign_test_p(5, 5) == 1.0 and sign_test_p(0, 0) == 1.0


# -- the report on a hand-made log ----------------------------------------------------------------------
def _ev(session: str, type_: str, variant: str | None = None, product: str = "p1", ts: float = 1.7e9) -> Event:
    fields = {"query": "q"} if type_ == "search" else {"product_id": product}
    return Event(session_id=session, type=type_, variant=variant, ts=ts, **fields)


def hand_made_log() -> list[Event]:
    """Experiment e1: control fusion 80 sessions (48 with a click), no-behaviour 70 (56 with a
    click) -- Newcombe's example; plus sessions that test the rules."""
    events: list[Event] = []
    for i in range(80):
        s = f"f{i}"
        events.append(_ev(s, "search", "e1:fusion"))
        events.append(_ev(s, "search", "e1:fusion"))  # two searches per session
        if i < 48:
            events.append(_ev(s, "click"))  # untagged (sent through the API): counts for fusion
        if i < 8:
            events.append(_ev(s, "add_to_cart", "e1:fusion"))
        if i < 2:
            events.append(_ev(s, "purchase", "e1:fusion"))
    for i in range(70):
        s = f"n{i}"
        events.append(_ev(s, "search", "e1:no-behaviour"))
        if i < 56:
            events.append(_ev(s, "click", "e1:no-behaviour"))
            events.append(_ev(s, "click", "e1:no-behaviour"))  # a second click on the same search
        if i < 14:
            events.append(_ev(s, "add_to_cart", "e1:no-behaviour"))
    # a session that names both variants: left out
    events += [_ev("mixed", "search", "e1:fusion"), _ev("mixed", "click", "e1:no-behaviour")]
    # a session of another experiment and one in none: not in e1
    events += [_ev("other", "search", "e2:fusion"), _ev("other", "click", "e2:fusion"), _ev("none", "click")]
    return events


def test_the_report_gives_known_rates_and_intervals():
    report = ab_report(hand_made_log(), "e1", bootstrap=300, seed=1)
    assert report["experiment"] == "e1" and report["experiments_in_log"] == ["e1", "e2"]
    assert report["control"] == FUSION and report["mixed_sessions"] == 1 and report["kind"] == "ab"
    f, n = report["variants"][FUSION], report["variants"][NO_BEHAVIOUR]
    assert (f["sessions"], f["searches"], f["clicks"]) == (80, 160, 48)
    assert (n["sessions"], n["searches"], n["clicks"]) == (70, 70, 112)
    assert f["session_ctr"]["rate"] == 0.6 and n["session_ctr"]["rate"] == 0.8
    assert (f["session_ctr"]["lo"], f["session_ctr"]["hi"]) == pytest.approx(wilson(48, 80), abs=1e-6)
    diff = n["vs_control"]["session_ctr"]
    assert diff["diff"] == pytest.approx(0.2)
    assert (round(diff["lo"], 4), round(diff["hi"], 4)) == (0.0524, 0.3339)  # Newcombe's published interval
    assert 0 < diff["p_value"] < 0.01
    # search CTR: a search counts once, when a click follows it before the next search
    assert f["search_ctr"]["count"] == 48 and f["search_ctr"]["rate"] == pytest.approx(48 / 160)
    assert n["search_ctr"]["count"] == 56 and n["search_ctr"]["rate"] == pytest.approx(0.8)
    assert f["search_ctr"]["lo"] < 0.3 < f["search_ctr"]["hi"]
    sd = n["vs_control"]["search_ctr"]
    assert sd["diff"] == pytest.approx(0.5) and 0.3 < sd["lo"] < 0.5 < sd["hi"] < 0.7
    assert f["add_to_cart_rate"]["rate"] == 0.1 and n["add_to_cart_rate"]["rate"] == 0.2
    assert f["purchase_rate"]["count"] == 2 and n["purchase_rate"]["count"] == 0
    assert "vs_control" not in f
    # the same log with the other variant as the control: the difference turns round
    flipped = ab_report(hand_made_log(), "e1", control=NO_BEHAVIOUR, bootstrap=300)
    assert flipped["variants"][FUSION]["vs_control"]["session_ctr"]["diff"] == pytest.approx(-0.2)


def test_the_report_reads_interleaving():
    events = []
    for i in range(10):  # 8 sessions won by fusion, 2 by no-behaviour, 2 ties, 1 without clicks
        s = f"i{i}"
        events.append(_ev(s, "search", "il:interleaved"))
        events.append(_ev(s, "click", "il:fusion" if i < 8 else "il:no-behaviour"))
    for i in range(2):
        s = f"t{i}"
        events += [_ev(s, "search", "il:interleaved"), _ev(s, "click", "il:fusion"), _ev(s, "click", "il:no-behaviour")]
    events.append(_ev("quiet", "search", "il:interleaved"))
    report = ab_report(events)
    il = report["interleaving"]
    assert report["kind"] == "interleaving" and report["variants"] == {}
    assert il["sessions"] == 13 and il["sessions_with_credited_clicks"] == 12
    assert il["wins"] == {FUSION: 8, NO_BEHAVIOUR: 2} and il["ties"] == 2
    assert il["win_rate"][FUSION]["rate"] == 0.8
    assert il["sign_test_p"] == pytest.approx(112 / 1024, rel=1e-3)
    assert il["credited_clicks"] == {FUSION: 10, NO_BEHAVIOUR: 4}


def test_the_report_refuses_what_it_cannot_read():
    with pytest.raises(UsageError, match="holds no events"):
        ab_report([])
    with pytest.raises(UsageError, match="no event in the log carries an experiment"):
        ab_report([_ev("s", "click")])
    with pytest.raises(UsageError, match="choose one with --experiment"):
        ab_report(hand_made_log())
    with pytest.raises(UsageError, match=r"no experiment 'nope'.*e1, e2"):
        ab_report(hand_made_log(), "nope")
    with pytest.raises(UsageError, match="no variant 'learned'"):
        ab_report(hand_made_log(), "e1", control="learned")


# -- the variant on events ------------------------------------------------------------------------------
def test_the_event_log_stores_the_variant(tmp_path):
    with SQLiteEventLog(tmp_path / "events.sqlite", pseudonyms=lambda s: f"p-{s}") as log:
        res = log.append(
            [
                {"session_id": "s1", "type": "search", "query": "tea", "variant": "rank1:fusion"},
                {"session_id": "s1", "type": "click", "product_id": "p1"},
                {"session_id": "s1", "type": "click", "product_id": "p1", "variant": "no colon"},
            ]
        )
        assert len(res.accepted) == 2 and res.rejected and "variant" in res.rejected[0][1]
        assert [e.variant for e in log.session("s1")] == ["rank1:fusion", None]
        assert [(e.session_id, e.variant) for e in log.replay()] == [("p-s1", "rank1:fusion"), ("p-s1", None)]


def test_a_log_written_before_experiments_gets_the_column(tmp_path):
    path = tmp_path / "events.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, session TEXT NOT NULL, "
        "type TEXT NOT NULL, product TEXT, query TEXT);"
        "INSERT INTO events(ts, session, type, product) VALUES (1.7e9, 'old', 'click', 'p1');"
    )
    conn.close()
    # the report reads an old log read-only (no column: no variants)
    with pytest.raises(UsageError, match="no event in the log carries"):
        run_ab(path)
    with SQLiteEventLog(path) as log:
        log.append([{"session_id": "new", "type": "click", "product_id": "p2", "variant": "e:fusion"}])
        assert [(e.session_id, e.variant) for e in log.replay()] == [("old", None), ("new", "e:fusion")]


# -- the command --------------------------------------------------------------------------------------
def _write_log(path: Path, events: list[Event]) -> Path:
    with SQLiteEventLog(path) as log:
        log.append(events)
    return path


def test_the_eval_ab_command(tmp_path):
    from ui.cli import main

    runner = CliRunner()
    home = tmp_path / "home"
    home.mkdir()
    _write_log(home / "events.sqlite", hand_made_log())
    res = runner.invoke(main, ["eval", "ab", "--home", str(home), "--experiment", "e1", "--json", "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["log"] == str(home / "events.sqlite")
    assert report["variants"][NO_BEHAVIOUR]["vs_control"]["session_ctr"]["diff"] == pytest.approx(0.2)

    res = runner.invoke(main, ["eval", "ab", "--events", str(home / "events.sqlite"), "--experiment", "e1"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("experiment e1: ") and "control fusion" in lines[0]
    assert any(line.strip().startswith("fusion: 80 sessions, 160 searches; session CTR 0.6000") for line in lines)
    assert any("vs control: session CTR +0.2000 [+0.0524, +0.3339]" in line for line in lines)

    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("\n".join(e.model_dump_json() for e in hand_made_log()), encoding="utf-8")
    res = runner.invoke(main, ["eval", "ab", "--events", str(jsonl), "--experiment", "e2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["variants"][FUSION]["sessions"] == 1


def test_the_eval_ab_command_says_what_is_wrong(tmp_path):
    from ui.cli import main

    runner = CliRunner()
    missing = runner.invoke(main, ["eval", "ab", "--events", str(tmp_path / "nope.sqlite")])
    assert missing.exit_code == 2 and "no event log at" in missing.output
    assert not (tmp_path / "nope.sqlite").exists()  # reading never creates a log
    SQLiteEventLog(tmp_path / "empty.sqlite").close()
    empty = runner.invoke(main, ["eval", "ab", "--events", str(tmp_path / "empty.sqlite")])
    assert empty.exit_code == 2 and "holds no events" in empty.output
    _write_log(tmp_path / "log.sqlite", hand_made_log())
    unknown = runner.invoke(main, ["eval", "ab", "--events", str(tmp_path / "log.sqlite"), "--experiment", "x9"])
    assert unknown.exit_code == 2 and "no experiment 'x9'" in unknown.output and "e1, e2" in unknown.output
    (tmp_path / "text.sqlite").write_text("not a database", encoding="utf-8")
    broken = runner.invoke(main, ["eval", "ab", "--events", str(tmp_path / "text.sqlite")])
    assert broken.exit_code == 2 and "not an SQLite event log" in broken.output


# -- the agent ----------------------------------------------------------------------------------------
@pytest.fixture()
def apparel(settings, use_embedder):
    from evals.dialogues import default_suite
    from retrieval import Catalog, ingest_file

    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl")
    return catalog


def _agent(catalog, folder: Path, experiment=None, rank: bool = True):
    from assistant.agent import ShoppingAgent
    from assistant.state import SessionStore
    from ranking.ranker import Ranker

    ranker = Ranker(catalog, SQLiteEventLog(folder / "events.sqlite")) if rank else None
    return ShoppingAgent(catalog, SessionStore(folder / "sessions"), ranker=ranker, experiment=experiment)


@pytest.mark.integration
def test_the_agent_serves_and_logs_the_sessions_variant(apparel, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    message = "牛仔裤"
    # no experiment: nothing changes -- no variant anywhere, today's ranking
    plain = _agent(apparel, tmp_path / "plain")
    assert plain.experiment is None and plain.variant("s1") is None
    before = plain.ask("s1", message).products
    assert [e.variant for e in plain.ranker.log.replay()] == [None]

    exp = Experiment.parse("ab1:fusion=50,no-behaviour=50", known=RANKINGS)
    fusion_id = next(s for s in (f"s{i}" for i in range(100)) if exp.assign(s) == FUSION)
    plain_id = next(s for s in (f"s{i}" for i in range(100)) if exp.assign(s) == NO_BEHAVIOUR)
    # the fusion arm is today's ranking: the same products as without an experiment
    fused = _agent(apparel, tmp_path / "fused", exp)
    assert fused.variant(fusion_id) == FUSION
    assert fused.ask(fusion_id, message).products == before
    assert [e.variant for e in fused.ranker.log.session(fusion_id)] == ["ab1:fusion"]
    # the no-behaviour arm is the retrieval order: what an agent without a ranker shows
    unranked = _agent(apparel, tmp_path / "unranked", rank=False)
    other = _agent(apparel, tmp_path / "other", exp)
    shown = other.ask(plain_id, message).products
    assert shown == unranked.ask(plain_id, message).products
    assert shown != before  # here the two rankings differ already for a new session (MMR diversifies)
    # feedback goes through the same recording: it carries the session's variant too
    assert other.tools.call("record_feedback", {"session_id": plain_id, "product_id": shown[0], "event": "dislike"}).ok
    assert [e.variant for e in other.ranker.log.session(plain_id)] == ["ab1:no-behaviour"] * 2
    # the report reads the agent's log back
    report = run_ab(other.ranker.log.path)
    assert report["variants"][NO_BEHAVIOUR]["searches"] == 1


@pytest.mark.integration
def test_the_agent_reads_the_experiment_from_the_environment(apparel, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "env1:no-behaviour=1,fusion=1")
    agent = _agent(apparel, tmp_path / "a")
    assert agent.experiment is not None and agent.experiment.name == "env1"
    assert agent.experiment.control == NO_BEHAVIOUR
    monkeypatch.setenv(ENV, "env1:fusion=1,learned=1")
    with pytest.raises(UsageError, match="unknown variant 'learned'"):
        _agent(apparel, tmp_path / "b")
