"""The public surface of analyzer.generate: exports resolve and the docstring example runs."""

from __future__ import annotations

import doctest

import analyzer.generate as generate


def test_all_names_resolve() -> None:
    for name in generate.__all__:
        assert getattr(generate, name) is not None, name


def test_docstring_example() -> None:
    result = doctest.testmod(generate)
    assert result.attempted > 0 and result.failed == 0
