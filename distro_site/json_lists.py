"""Membership tests on JSON list columns, on every database the project runs on.

PostgreSQL answers `column @> '["x"]'` (Django's `__contains` on a JSONField), from a GIN
index where there is one; SQLite, the embedded database of `make demo`, has no such lookup and
Django refuses it. `json_list_contains` narrows a query where the database can and matches
every row where it cannot, so callers always test membership in Python as well: the query is
the fast path, the Python test is the rule.
"""

from django.db import connection
from django.db.models import Q


def json_list_contains(column: str, value) -> Q:
    """Rows whose JSON list `column` holds `value` (on PostgreSQL); every row elsewhere."""
    if connection.features.supports_json_field_contains:
        return Q(**{f"{column}__contains": [value]})
    return Q(pk__isnull=False)  # not Q(): an empty Q vanishes from an OR instead of matching all
