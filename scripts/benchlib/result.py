"""One loopback case's samples and its verdict."""

import statistics
from dataclasses import dataclass, field


@dataclass
class Result:
    case: str
    target: str  # e.g. "<= 0.2"
    limit: float | None  # pass when ratio (or the count) <= limit
    drcache: list = field(default_factory=list)
    baseline: list = field(default_factory=list)
    labels: tuple = ("drcache start", "baseline")
    unit: str = "s"
    skipped: str | None = None
    judge_absolute: bool = False  # judge drcache's own value, not the ratio
    note: str = ""

    def ratio(self):
        if not self.drcache or not self.baseline:
            return None
        return statistics.median(self.drcache) / statistics.median(self.baseline)

    def paired(self):
        """drcache/baseline within each round: robust to drift between rounds."""
        return [a / b for a, b in zip(self.drcache, self.baseline) if b]

    def verdict(self):
        if self.skipped or self.limit is None:
            return "-"
        value = statistics.median(self.drcache) if self.judge_absolute else self.ratio()
        return "pass" if value <= self.limit else "MISS"
