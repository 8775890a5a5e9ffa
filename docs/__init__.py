"""The documentation site's tools (not part of the mibun package).

A package so that pytest imports ``docs/conftest.py`` as ``docs.conftest``: a second
top-level ``conftest`` beside ``tests/conftest.py`` would clash under ``--doctest-modules``.
"""
