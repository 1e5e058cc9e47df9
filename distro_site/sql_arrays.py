"""Filtering by thousands of ids as one array parameter instead of thousands of placeholders.

`field__in=[...]` with a long list makes Django build and psycopg parse a query with one
placeholder per value, on every request (psycopg caches the parsing of short queries only).
`field__in=in_array(values)` sends one array: the query text stays short and the same.
SQLite (the local demo's database) has no arrays; there the values go as a plain list.
"""

from django.db import connection
from django.db.models.expressions import RawSQL


def in_array(values, sql_type: str = "bigint") -> RawSQL | list:
    """A subquery of `values` (ids by default, or e.g. "text") for an `__in` filter."""
    if connection.vendor != "postgresql":
        return list(values)
    return RawSQL(f"SELECT unnest(%s::{sql_type}[])", (list(values),))
