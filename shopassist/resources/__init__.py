"""Files shipped inside the package (the bundled demo catalog)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from shopassist.errors import UsageError


def demo_catalog_path() -> Path:
    """The bundled bilingual demo catalog (JSONL in the catalog schema)."""
    path = Path(str(resources.files("shopassist.resources") / "demo_catalog.jsonl"))
    if not path.exists():
        raise UsageError(
            f"The bundled demo catalog is missing at {path}. Rebuild it with "
            "`python scripts/build_demo_catalog.py` from a checkout that has ../shared/data."
        )
    return path
