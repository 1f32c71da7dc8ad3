"""All drift tests by Evidently registry name, and the one factory that builds them."""

from __future__ import annotations

from detectors.stattests.anderson import AndersonDarling
from detectors.stattests.base import StatTest
from detectors.stattests.chisquare import ChiSquare
from detectors.stattests.cramer_von_mises import CramerVonMises
from detectors.stattests.energy import EnergyDistance
from detectors.stattests.hellinger import Hellinger
from detectors.stattests.jensenshannon import JensenShannon
from detectors.stattests.kl_div import KLDiv
from detectors.stattests.ks import KS
from detectors.stattests.psi import PSI
from detectors.stattests.wasserstein import Wasserstein
from detectors.stattests.z import ZTest

__all__ = ["STATTESTS", "UnknownStatTestError", "get_stattest"]

STATTESTS: dict[str, type[StatTest]] = {
    cls.name: cls
    for cls in (
        KS,
        Wasserstein,
        PSI,
        ChiSquare,
        ZTest,
        JensenShannon,
        Hellinger,
        KLDiv,
        AndersonDarling,
        CramerVonMises,
        EnergyDistance,
    )
}


class UnknownStatTestError(ValueError):
    """A test name that is not in the registry."""


def get_stattest(name: str, threshold: float | None = None, **params: object) -> StatTest:
    """A test instance by registry name; unknown names are rejected with the known ones."""
    cls = STATTESTS.get(name)
    if cls is None:
        raise UnknownStatTestError(
            f"unknown drift test {name!r}; known tests: {', '.join(sorted(STATTESTS))}"
        )
    return cls(threshold, **params)  # type: ignore[arg-type]
