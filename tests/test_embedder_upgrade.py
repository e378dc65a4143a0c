"""Moving a live catalog to another embedder (retrieval/upgrade.py): searchable with the old
vectors throughout, every process switched at its next search, products written meanwhile kept,
a stopped upgrade resumed, progress visible.

The two embedders are ``HashingEmbedder``s of different sizes standing in for USE (the catalog's)
and EmbeddingGemma (the target): what is tested is the staging, the switch and the processes
following it, with real SQLite, Chroma and search code."""

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from evals.dialogues import default_suite
from retrieval import Catalog, HybridRetriever, ingest_file
from retrieval.search import ZH_WEIGHTS_BY_EMBEDDER, HybridConfig
from retrieval.testing import HashingEmbedder
from retrieval.upgrade import EmbedderUpgrade, read_status
from shopassist.errors import UsageError
from shopassist.models import Product, SearchFilters

pytestmark = pytest.mark.integration

APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"
OLD = HashingEmbedder(dim=64)
NEW = HashingEmbedder(dim=96)


def open_catalog(settings) -> Catalog:
    """A process's catalog: it embeds with the stand-in of whichever backend the store names."""
    catalog = Catalog(settings)
    catalog.embedder_factory = {"use": OLD, "gemma": NEW}.__getitem__
    return catalog


def top_ids(retriever, query, k=5):
    return [c.product.id for c in retriever.search(query, SearchFilters(), top_k=k)]


def product(pid: str, title: str) -> Product:
    return Product(id=pid, title=title, price=99.0, category="女装/连衣裙", brand="Acme")


def test_searches_keep_working_during_the_upgrade_and_follow_the_switch(settings, caplog):
    reader = open_catalog(settings)
    ingest_file(reader, APPAREL)
    retriever = HybridRetriever(reader)
    before = top_ids(retriever, "连衣裙")
    assert before and reader.view().dim == 64
    doomed = before[-1]
    seen_during: list[list[str]] = []

    def meanwhile(progress):
        if progress.state == "embedding" and not seen_during:
            # a shopper searches and the shop writes while the upgrade is under way
            seen_during.append(top_ids(retriever, "连衣裙"))
            reader.upsert([product("new-1", "真丝连衣裙 新款 夏季")])
            reader.delete([doomed])

    upgrader = open_catalog(settings)
    caplog.set_level(logging.INFO)
    progress = EmbedderUpgrade(upgrader, "gemma", embedder=NEW, batch=4, on_progress=meanwhile).run()

    assert seen_during and seen_during[0] == before  # the old vectors answered throughout
    assert progress.state == "done" and progress.total == len(reader)
    assert reader.store.meta("embedder") == "gemma"
    # the reader's next search: reloaded, new vectors, the target's fusion weights
    after = top_ids(retriever, "真丝连衣裙")
    assert reader.embedder_backend == "gemma" and reader.view().dim == 96
    assert retriever.config.zh_weights == ZH_WEIGHTS_BY_EMBEDDER["gemma"]
    assert "new-1" in after  # written with the old embedder mid-upgrade, embedded again before the switch
    assert reader.vector_of("new-1") is not None and len(reader.vector_of("new-1")) == 96
    assert doomed not in top_ids(retriever, "连衣裙", k=50)
    assert reader.get(doomed) is None
    # the ANN leg alone finds products in the new collection
    assert reader.vectors.settings.collection == "products-gemma"
    assert reader.vectors.count() == len(reader)
    # the upgrade leaves nothing behind but its finished status
    assert not (settings.home / "upgrade" / "gemma.sqlite").exists()
    status = read_status(settings.home)
    assert status is not None and status.state == "done" and status.done == status.total == len(reader)


def test_a_writer_that_has_not_searched_since_the_switch_embeds_with_the_new_embedder(settings):
    writer = open_catalog(settings)
    ingest_file(writer, APPAREL)
    assert writer.embedder is OLD  # resolved before the upgrade
    EmbedderUpgrade(open_catalog(settings), "gemma", embedder=NEW, batch=64).run()
    writer.upsert([product("late-1", "羊毛大衣 加厚")])  # no search in between
    assert writer.embedder_backend == "gemma"
    assert len(writer.vector_of("late-1")) == 96
    fresh = open_catalog(settings)
    assert fresh.view().dim == 96 and len(fresh.vector_of("late-1")) == 96


def test_a_stopped_upgrade_resumes_and_the_failure_is_visible(settings):
    ingest_file(open_catalog(settings), APPAREL)
    n = len(open_catalog(settings))

    class Flaky(HashingEmbedder):
        calls = 0

        def embed_documents(self, texts):
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise RuntimeError("the embedding server went away")
            return super().embed_documents(texts)

    with pytest.raises(RuntimeError):
        EmbedderUpgrade(open_catalog(settings), "gemma", embedder=Flaky(dim=96), batch=8).run()
    status = read_status(settings.home)
    assert status is not None and status.state == "failed" and "went away" in (status.error or "")
    assert 0 < status.done < n
    assert open_catalog(settings).embedder_backend == "use"  # nothing switched
    again = EmbedderUpgrade(open_catalog(settings), "gemma", embedder=NEW, batch=8).run()
    assert again.state == "done" and again.total == n
    assert again.embedded_now < 2 * n  # the staged products were not embedded again
    assert open_catalog(settings).view().dim == 96


def test_naming_the_old_embedder_after_an_upgrade_is_a_clear_error(settings, tmp_path):
    ingest_file(open_catalog(settings), APPAREL)
    EmbedderUpgrade(open_catalog(settings), "gemma", embedder=NEW).run()
    from dataclasses import replace

    pinned = Catalog(replace(settings, embedder="use"))
    with pytest.raises(UsageError, match="embedded with 'gemma'"):
        _ = pinned.embedder
    # leaving --embedder out follows the catalog
    assert open_catalog(settings).embedder_backend == "gemma"
    # an upgrade to the embedder in use does nothing
    assert EmbedderUpgrade(open_catalog(settings), "gemma", embedder=NEW).run().embedded_now == 0


def test_status_and_healthz_show_an_upgrade_under_way(settings, use_embedder):
    from ui.api import create_app
    from ui.cli import main

    catalog = Catalog(settings, embedder=use_embedder)
    catalog.upsert([product("p1", "连衣裙")])
    (settings.home / "embedder-upgrade.json").write_text(
        json.dumps(
            {
                "source": "use",
                "target": "gemma",
                "state": "embedding",
                "done": 250,
                "total": 1000,
                "embedded_now": 400,
                "texts_per_s": 8.0,
                "eta_s": 150.0,
                "started_at": 0.0,
                "updated_at": 0.0,
                "pid": 1,
            }
        )
    )
    result = CliRunner().invoke(main, ["embedder", "status", "--home", str(settings.home)])
    assert result.exit_code == 0, result.output
    assert "use -> gemma: embedding, 250/1000 products (25.0%), about 2 min left" in result.output
    assert "searches use use until the switch" in result.output
    result = CliRunner().invoke(main, ["embedder", "status", "--home", str(settings.home), "--json"])
    assert json.loads(result.output)["upgrade"]["percent"] == 25.0
    assert json.loads(result.output)["embedder"] == "use"

    from assistant.agent import ShoppingAgent
    from assistant.state import SessionStore

    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"))
    health = TestClient(create_app(catalog, agent, api_key=None)).get("/healthz").json()
    assert health["embedder"] == "use"
    assert health["embedder_upgrade"]["done"] == 250 and health["embedder_upgrade"]["to"] == "gemma"


def test_the_default_config_follows_the_embedder_but_a_fixed_one_stays(settings):
    catalog = open_catalog(settings)
    catalog.upsert([product("p1", "连衣裙")])
    fixed = HybridConfig()
    assert HybridRetriever(catalog, fixed).config is fixed
    assert HybridRetriever(catalog).config.zh_weights == HybridConfig.for_embedder("use").zh_weights
