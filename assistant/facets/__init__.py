"""The catalog's own facet vocabulary: which categories, brands, attribute values and title words
really occur, and how often, per category.

Why this exists: the rule parser (``assistant.rules``) and the query-expansion step must only
speak the catalog's language. A refinement chip such as "高腰 (23)" is useful only if 23 products
of the intended category really carry it; a brand is recognised in "自然堂面霜" only because the
catalog sells ``CHANDO/自然堂``. Everything here is counted from products, plus a few built-in
groups (colours, audience, materials, sizes) for catalogs whose attributes are sparse.

The package, by concept:

* ``phrases``: phrase tokens and matching (``normalise_text``, ``phrase_key``, ``PhraseMatcher``,
  ``says``), the one way every vocabulary is matched against a message;
* ``vocabulary``: the built-in colour / audience / material / size word lists and their groups;
* ``mentions``: ``Mention`` (a known phrase found in a message) and the scan for built-in words;
* ``entries``: what one product contributes to the index, and what of it counts as a facet;
* ``index``: ``FacetIndex``, the per-category counts, the catalog vocabularies, category
  detection and refinement suggestions.

The names below are the package's interface; import them from ``assistant.facets``.
"""

from assistant.facets.index import FacetIndex
from assistant.facets.mentions import Mention, scan_builtins
from assistant.facets.phrases import (
    PhraseMatcher,
    normalise_text,
    phrase_key,
    phrase_tokens,
    says,
    select_spans,
)
from assistant.facets.vocabulary import (
    AUDIENCE_WORDS,
    COLOUR_WORDS,
    GROUP_AUDIENCE,
    GROUP_BRAND,
    GROUP_COLOUR,
    GROUP_MATERIAL,
    GROUP_SIZE,
    MATERIAL_WORDS,
    audience_class,
    builtin_group,
    canonical_group,
)

__all__ = [
    "AUDIENCE_WORDS",
    "COLOUR_WORDS",
    "GROUP_AUDIENCE",
    "GROUP_BRAND",
    "GROUP_COLOUR",
    "GROUP_MATERIAL",
    "GROUP_SIZE",
    "MATERIAL_WORDS",
    "FacetIndex",
    "Mention",
    "PhraseMatcher",
    "audience_class",
    "builtin_group",
    "canonical_group",
    "normalise_text",
    "phrase_key",
    "phrase_tokens",
    "says",
    "scan_builtins",
    "select_spans",
]
