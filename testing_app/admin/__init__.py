"""Admin for the testing side: display and filters only; state changes belong to services."""

from . import hosts
from . import maintenance
from . import notifications
from . import promotions
from . import reference
from . import runs

__all__ = ["hosts", "maintenance", "notifications", "promotions", "reference", "runs"]
