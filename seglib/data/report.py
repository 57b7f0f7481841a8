"""Validation problems, collected into a report instead of raised one at a time."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file.

    ``code`` is a stable machine-readable kind (e.g. ``"mask_size"``); ``problem`` is the
    sentence a person reads; ``excluded`` says whether the image was left out because of it.
    """

    file: str
    problem: str
    code: str
    image_id: str | None = None
    excluded: bool = True
    severity: str = "error"  # "error" (left out) or "warning" (kept)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)

    def add(self, file, problem: str, code: str, image_id: str | None = None,
            excluded: bool = True) -> None:
        self.problems.append(Problem(str(file), problem, code, image_id, excluded,
                                     "error" if excluded else "warning"))

    def extend(self, problems) -> None:
        self.problems.extend(problems)

    @property
    def excluded_ids(self) -> set[str]:
        return {p.image_id for p in self.problems if p.excluded and p.image_id is not None}

    def __len__(self) -> int:
        return len(self.problems)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def to_list(self) -> list[dict]:
        return [p.to_dict() for p in self.problems]
