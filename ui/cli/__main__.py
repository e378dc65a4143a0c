"""``python -m ui.cli``: the ``shopassist`` command line."""

from ui.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
