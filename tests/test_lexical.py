import numpy as np
import pytest

from retrieval.lexical import BM25Index
from retrieval.tokenize import Tokenizer

pytestmark = pytest.mark.unit

DOCS = {
    "a": "waterproof hiking boots brown leather",
    "b": "waterproof hiking boots black",
    "c": "trail running shoes grey",
    "d": "winter snow boots waterproof brown insulated",
    "e": "mascara lash princess",
}


def test_scores_match_bm25s_lucene():
    """Same formula as bm25s' Lucene variant: the same ranking and proportional scores."""
    import bm25s

    ids = list(DOCS)
    corpus = [DOCS[i].split() for i in ids]
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index(corpus, show_progress=False)
    ours = BM25Index(k1=1.2, b=0.75)
    for i, toks in zip(ids, corpus, strict=True):
        ours.upsert(i, toks)
    query = ["waterproof", "brown", "boots"]
    ref_scores = ref.get_scores(query)
    slots, scores = ours.score(query)
    mine = np.zeros(len(ids))
    for s, v in zip(slots, scores, strict=True):
        mine[ids.index(ours.slot_ids[s])] = v
    # bm25s' Lucene variant omits the constant (k1 + 1) factor.
    assert np.allclose(mine / (1.2 + 1), ref_scores, rtol=1e-5)


def test_incremental_updates_equal_a_rebuild():
    inc = BM25Index()
    for i, text in DOCS.items():
        inc.upsert(i, text.split())
    inc.upsert("a", ["red", "wool", "coat"])  # replace
    inc.remove("c")
    inc.upsert("f", ["grey", "running", "shoes"])  # reuses c's slot
    fresh = BM25Index()
    for i, text in {**DOCS, "a": "red wool coat", "f": "grey running shoes"}.items():
        if i != "c":
            fresh.upsert(i, text.split())
    for query in (["boots", "brown"], ["grey", "shoes"], ["coat"]):
        assert dict(inc.top(query, 10)) == pytest.approx(dict(fresh.top(query, 10)))
    assert len(inc) == 5 and "c" not in inc


def test_tokenizer_mixed_chinese_english():
    tok = Tokenizer()
    tokens = tok("高腰牛仔裤女 Waterproof Hiking BOOTS 50ML")
    assert "牛仔裤" in tokens
    assert "boot" in tokens and "waterproof" in tokens  # stemmed, case-folded
    assert "50ml" in tokens
    assert all(" " not in t for t in tokens)
    # full-width characters are folded
    assert tok("ｉＰｈｏｎｅ手机壳") == tok("iphone手机壳")
