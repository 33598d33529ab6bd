"""``python -m analyzer``: the ``analyzer`` command (``analyzer.entry``)."""

from analyzer.entry import main

if __name__ == "__main__":
    main()
