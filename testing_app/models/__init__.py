"""Testing models: reference axes, hosts, runs and jobs, results, waivers, promotions, notices."""

from .hosts import EnrollmentToken
from .hosts import Host
from .notifications import Notification
from .promotions import Promotion
from .promotions import PromotionItem
from .promotions import Waiver
from .reference import Platform
from .reference import Variant
from .runs import CellResult
from .runs import Job
from .runs import Run
from .verdicts import Verdict

__all__ = [
    "CellResult",
    "EnrollmentToken",
    "Host",
    "Job",
    "Notification",
    "Platform",
    "Promotion",
    "PromotionItem",
    "Run",
    "Variant",
    "Verdict",
    "Waiver",
]
