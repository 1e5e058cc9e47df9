"""Admin for the catalog: display and filters only; state changes belong to services."""

from . import channels
from . import people

__all__ = ["channels", "people"]
