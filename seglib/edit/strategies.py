"""Label next's strategies by name: what the CLI's parser and the page list without importing
torch (seglib.edit.label_next applies them)."""

STRATEGIES = {
    "score": "entropy and run disagreement, near-copies of a queued image pushed back",
    "uncertainty": "entropy and run disagreement, without the near-copy rule",
    "entropy": "the runs' mean pixel entropy",
    "disagreement": "the share of pixels where a run disagrees with the runs' pixelwise vote",
    "kcenter": "k-center greedy on thumbnails: each next image the least like any labeled or queued one",
    "random": "a seeded random order: the baseline every other strategy must beat",
}
NEEDS_RUNS = ("score", "uncertainty", "entropy", "disagreement")
