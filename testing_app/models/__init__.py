"""Testing models: reference axes, hosts, runs and jobs, results, waivers, promotions, notices."""

from .hosts import EnrollmentToken
from .hosts import Host
from .hosts import WorkerProcess
from .installability import InstallabilityCheck
from .maintenance import MaintainerClaim
from .maintenance import PackageNoticeIssue
from .maintenance import PackageStatusEvent
from .maintenance import ReleaseImpact
from .notifications import Notification
from .pinned_results import PinnedCellResult
from .promotions import Promotion
from .promotions import PromotionItem
from .promotions import Waiver
from .reference import Platform
from .reference import Variant
from .rollups import JobDayCount
from .rollups import PackageVerdictCount
from .runs import CellResult
from .runs import Job
from .runs import Run
from .set_solves import SetPartnerSolve
from .verdicts import Verdict

__all__ = [
    "CellResult",
    "EnrollmentToken",
    "Host",
    "InstallabilityCheck",
    "Job",
    "JobDayCount",
    "MaintainerClaim",
    "Notification",
    "PackageNoticeIssue",
    "PackageVerdictCount",
    "PackageStatusEvent",
    "PinnedCellResult",
    "Platform",
    "Promotion",
    "PromotionItem",
    "ReleaseImpact",
    "Run",
    "SetPartnerSolve",
    "Variant",
    "Verdict",
    "Waiver",
    "WorkerProcess",
]
