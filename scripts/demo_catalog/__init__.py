"""Building blocks of ``scripts/build_demo_catalog.py`` (the bundled demo catalog builder).

The data tables live in ``data/*.json`` (see ``README.md``); ``tables`` loads them. Only the
standard library is used.
"""
