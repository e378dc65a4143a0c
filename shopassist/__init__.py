"""shopassist: a conversational shopping assistant for Chinese and English catalogs.

This package holds what every other package may import: typed models, settings and errors.
"""

from shopassist.errors import BackendError, ModelBehaviourError, ShopAssistError, UsageError
from shopassist.models import Candidate, Product, SearchFilters

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Candidate",
    "ModelBehaviourError",
    "Product",
    "SearchFilters",
    "ShopAssistError",
    "UsageError",
    "__version__",
]
