"""Validation problems, collected into a report instead of raised one at a time."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Problems of the dataset as a whole rather than of one of its files: its class file, its .npz's
# structure, nothing found. People read them first (one of them can explain a thousand file warnings).
DATASET_LEVEL_CODES = frozenset({
    "bad_class_map", "class_file_colours_missing", "class_file_colours_unseen",
    "empty", "npz_keys", "npz_shape", "npz_unknown_key", "unreadable_npz",
})


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

    @property
    def dataset_level(self) -> bool:
        return self.code in DATASET_LEVEL_CODES


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

    def to_list(self, dataset_first: bool = False) -> list[dict]:
        """The problems as dicts; with ``dataset_first``, the dataset-level ones first (errors before
        warnings), then the files' in the order found."""
        problems = self.problems
        if dataset_first:
            problems = self.dataset_problems() + [p for p in problems if not p.dataset_level]
        return [p.to_dict() for p in problems]

    def dataset_problems(self) -> list[Problem]:
        """The problems of the dataset as a whole (:data:`DATASET_LEVEL_CODES`), errors first."""
        return sorted((p for p in self.problems if p.dataset_level), key=lambda p: p.severity != "error")
