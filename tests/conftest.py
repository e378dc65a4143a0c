"""Shared fixtures: real components in temp dirs (real components over mocks).

The packaged USE embedder is loaded once per session and shared; every test gets its own home.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# an `ask` in a test answers in its own process; tests of the agent server turn it on themselves
os.environ.setdefault("SHOPASSIST_AGENT_IDLE_MINUTES", "0")

from shopassist.config import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHOPASSIST_SHARED_DATA", REPO.parent / "shared" / "data"))

SAMPLE_PRODUCTS = [
    {
        "id": "j1",
        "title": "高腰修身牛仔裤女 黑色 弹力小脚裤",
        "brand": "Levi's/李维斯",
        "category": "服饰 > 女装 > 牛仔裤",
        "price": 299,
        "currency": "CNY",
        "stock": 12,
        "attributes": {"颜色": "黑色", "腰型": "高腰", "版型": "修身"},
    },
    {
        "id": "j2",
        "title": "破洞牛仔裤女 浅蓝色 宽松直筒",
        "brand": "优衣库",
        "category": "服饰 > 女装 > 牛仔裤",
        "price": 149,
        "currency": "CNY",
        "stock": 30,
        "attributes": {"颜色": "浅蓝色", "风格": "破洞"},
    },
    {
        "id": "j3",
        "title": "加绒加厚牛仔裤女 冬季保暖 高腰",
        "brand": "森马",
        "category": "服饰 > 女装 > 牛仔裤",
        "price": 89,
        "currency": "CNY",
        "stock": 0,
        "attributes": {"颜色": "蓝色", "腰型": "高腰", "厚度": "加绒"},
    },
    {
        "id": "j4",
        "title": "男士直筒牛仔裤 深蓝",
        "brand": "森马",
        "category": "服饰 > 男装 > 牛仔裤",
        "price": 129,
        "currency": "CNY",
        "stock": 5,
        "attributes": {"颜色": "深蓝色"},
    },
    {
        "id": "s1",
        "title": "CHANDO/自然堂 雪域精粹纯粹滋润霜50g 补水保湿 面霜",
        "brand": "CHANDO/自然堂",
        "category": "美妆 > 面部护理 > 面霜",
        "price": 139,
        "currency": "CNY",
        "stock": 100,
        "attributes": {"容量": "50g"},
    },
    {
        "id": "b1",
        "title": "Waterproof Hiking Boots for Men, Brown Leather",
        "brand": "TrailCo",
        "category": "Shoes > Men > Boots",
        "price": 89.99,
        "currency": "USD",
        "stock": 8,
        "attributes": {"color": "brown", "material": "leather"},
        "language": "en",
    },
    {
        "id": "b2",
        "title": "Waterproof Hiking Boots for Women, Black",
        "brand": "Summit",
        "category": "Shoes > Women > Boots",
        "price": 79.5,
        "currency": "USD",
        "stock": 3,
        "attributes": {"color": "black"},
        "language": "en",
    },
    {
        "id": "b3",
        "title": "Lightweight Trail Running Shoes, Grey",
        "brand": "TrailCo",
        "category": "Shoes > Men > Running",
        "price": 120.0,
        "currency": "USD",
        "stock": 15,
        "attributes": {"color": "grey"},
        "language": "en",
    },
    {
        "id": "b4",
        "title": "Insulated Winter Snow Boots, Waterproof, Brown",
        "brand": "Summit",
        "category": "Shoes > Women > Boots",
        "price": 140.0,
        "currency": "USD",
        "stock": 2,
        "attributes": {"color": "brown"},
        "language": "en",
    },
    {
        "id": "m1",
        "title": "Essence Mascara Lash Princess",
        "brand": "Essence",
        "category": "Beauty > Mascara",
        "price": 9.99,
        "currency": "USD",
        "stock": 99,
        "language": "en",
    },
]


@pytest.fixture(scope="session")
def use_embedder():
    from retrieval.embedders import USEEmbedder

    return USEEmbedder(threads=2)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture()
def catalog(settings, use_embedder):
    from retrieval import Catalog

    return Catalog(settings, embedder=use_embedder)


@pytest.fixture()
def loaded_catalog(catalog):
    from shopassist.models import Product

    catalog.upsert([Product.model_validate(p) for p in SAMPLE_PRODUCTS])
    return catalog


@pytest.fixture()
def sample_file(tmp_path: Path) -> Path:
    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in SAMPLE_PRODUCTS) + "\n", encoding="utf-8")
    return path
