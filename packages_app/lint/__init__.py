"""The upper-bound lint, a pure engine: rules over builds and over proposed recipes.

No queries and no I/O here: callers pass builds or rendered recipes in.
"""
