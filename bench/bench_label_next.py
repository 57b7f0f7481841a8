"""Does Label next's ranking beat random picking? Pool-based rounds on labeled data treated as
unlabeled, for each strategy of seglib.edit.label_next on the same seeds and training recipe.

Start from a small seeded set (2% of the pool), train, rank the rest of the pool with the
strategy (the product's own ranking code, on the run's predictions), "label" the top B (their
true masks revealed), retrain from scratch, repeat to the budget; score every round's model on a
held-out test set. Two kinds of data:

  diverse    the demo's terrain, every image its own scene (64x128)
  redundant  frames of slowly moving scenes: 20 scenes, each seen in 20 frames shifted a few
             pixels apart with fresh sensor noise (what video and overlapping tiles look like)

Strategies: random, entropy (one run: its mean pixel entropy), score (the default: entropy and,
with several runs, their disagreement, near-copies of a queued image pushed back), kcenter
(k-center greedy on thumbnails, from the labeled images: diversity, Sener & Savarese 2018).
"disagreement" needs two runs a round (``--ensemble``: twice the training time).

Prints the test mIoU at each budget per strategy (mean and spread over seeds), the labels each
needed to reach 95% of the all-labels mIoU, and draws the curves into docs/label_next_curves.png.

    .venv/bin/python bench/bench_label_next.py --quick   # 1 seed, 2 rounds: a few minutes on 2 CPU cores
    .venv/bin/python bench/bench_label_next.py           # 3 seeds, 4 rounds to 10%
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_label_errors import test_miou  # noqa: E402

from seglib.data.demo import clean_terrain  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def diverse_set(n: int, n_test: int, seed: int):
    images, masks = clean_terrain(n + n_test, seed)
    return images[:n], masks[:n], images[n:], masks[n:]


def redundant_set(n: int, n_test: int, seed: int, per_scene: int = 20):
    """Frames of slowly moving scenes: each scene a terrain image seen ``per_scene`` times, each
    frame shifted 1-2 px further (wrapping) with its own noise."""
    rng = np.random.default_rng(seed + 1000)
    scenes_n = max(1, n // per_scene)
    test_scenes = max(1, n_test // per_scene)
    base_img, base_mask = clean_terrain(scenes_n + test_scenes, seed)

    def frames(idx):
        ims, ms = [], []
        for s in idx:
            dx = dy = 0
            for _ in range(per_scene):
                dx += int(rng.integers(1, 3))
                dy += int(rng.integers(0, 2))
                im = np.roll(base_img[s], (dy, dx), axis=(0, 1)).astype(np.int16) + rng.normal(0, 4, base_img[s].shape)
                ims.append(np.clip(im, 0, 255).astype(np.uint8))
                ms.append(np.roll(base_mask[s], (dy, dx), axis=(0, 1)))
        return np.stack(ims), np.stack(ms)

    tr_i, tr_m = frames(range(scenes_n))
    te_i, te_m = frames(range(scenes_n, scenes_n + test_scenes))
    return tr_i, tr_m, te_i, te_m


SETS = {"diverse": diverse_set, "redundant": redundant_set}


def _train(npz: str, labeled: list[str], out: Path, seed: int, epochs: int, steps: int) -> Path:
    from seglib.train import TrainConfig, train

    cfg = TrainConfig.quick(npz, train_ids=labeled, val_ids=labeled, epochs=epochs, max_steps_per_epoch=steps,
                            batch_size=8, seed=seed)
    train(cfg, out, callbacks=())
    return out


def _rank(npz: str, runs: list[Path], pool: list[str], labeled: list[str], strategy: str, seed: int) -> list[str]:
    """The pool in the product's order for ``strategy`` (seglib.edit.label_next)."""
    from seglib.data import open_dataset
    from seglib.edit import label_next as ln
    from seglib.predict import dataset_layout, open_members, predict

    ds = open_dataset(npz)
    thumbs = np.stack([ln._thumb(ds, i) for i in pool])
    zeros = np.zeros(len(pool))
    if strategy not in ln.NEEDS_RUNS:
        known = np.stack([ln._thumb(ds, i) for i in labeled])
        return list(ln.rank(pool, zeros, zeros, thumbs, strategy=strategy, seed=seed, labeled=known)["image_id"])
    layout = dataset_layout(ds)
    members, problems = open_members([str(r) for r in runs], layout)
    assert members, problems
    pred = predict(ds, members, [], pool, device="cpu", use_cache=False, layout=layout)
    cols = [pred.columns[m.name] for m in members]   # as seglib.edit.label_next scores them
    entropy = np.array([np.mean([float(c.entropy_map(i).mean()) for c in cols]) for i in pool])
    disagree = np.array([ln._disagreement([c.mask(i) for c in cols]) for i in pool]) if len(cols) > 1 else zeros
    return list(ln.rank(pool, entropy, disagree, thumbs if strategy == "score" else None,
                        strategy=strategy)["image_id"])


def one_curve(npz: str, test_npz: str, ids: list[str], strategy: str, seed: int, budgets: list[int], args,
              root: Path) -> list[float]:
    rng = np.random.default_rng(seed)
    labeled = [ids[k] for k in sorted(rng.choice(len(ids), budgets[0], replace=False))]
    scores: list[float] = []
    runs: list[Path] = []
    for r, budget in enumerate(budgets):
        if r:
            pool = [i for i in ids if i not in set(labeled)]
            order = _rank(npz, runs, pool, labeled, strategy, seed)
            labeled = labeled + order[: budget - len(labeled)]
        runs = [_train(npz, labeled, root / f"{strategy}-s{seed}-r{r}-m{m}", seed + m, args.epochs, args.steps)
                for m in range(2 if args.ensemble else 1)]
        scores.append(test_miou(runs[0], test_npz))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="diverse,redundant")
    ap.add_argument("--strategies", default="random,entropy,score,kcenter")
    ap.add_argument("--n", type=int, default=400, help="pool size")
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--budgets", default="8,16,24,40", help="labeled images after each round (the first: the seed set)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="steps an epoch")
    ap.add_argument("--ensemble", action="store_true", help="two runs a round (needed for disagreement)")
    ap.add_argument("--quick", action="store_true", help="1 seed, budgets 8,16,32")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "label_next_curves.png")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.budgets = 1, "8,16,32"
    budgets = [int(b) for b in args.budgets.split(",")]
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results: dict = {"settings": {k: v for k, v in vars(args).items() if k not in ("json", "plot")}, "sets": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.sets.split(","):
            tr_i, tr_m, te_i, te_m = SETS[name](args.n, args.n_test, 0)
            npz, test_npz = str(root / f"{name}.npz"), str(root / f"{name}_test.npz")
            np.savez(npz, images=tr_i, masks=tr_m)
            np.savez(test_npz, images=te_i, masks=te_m)
            from seglib.data import open_dataset

            ids = list(open_dataset(npz).ids)
            full = test_miou(_train(npz, ids, root / f"{name}-all", 0, args.epochs, args.steps), test_npz)
            curves = {}
            for strategy in args.strategies.split(","):
                runs = [one_curve(npz, test_npz, ids, strategy, s, budgets, args, root / name)
                        for s in range(args.seeds)]
                curves[strategy] = runs
                mean, spread = np.mean(runs, axis=0), np.std(runs, axis=0)
                print(f"[{name}] {strategy:<8} " + "  ".join(f"{b}: {m:.3f}±{s:.3f}" for b, m, s in
                                                          zip(budgets, mean, spread, strict=True)), flush=True)
            reach = {s: next((b for b, m in zip(budgets, np.mean(c, axis=0), strict=True) if m >= 0.95 * full), None)
                     for s, c in curves.items()}
            print(f"[{name}] all {len(ids)} labels: mIoU {full:.3f}; labels to reach 95% of it: "
                  + ", ".join(f"{s} {r if r else f'>{budgets[-1]}'}" for s, r in reach.items())
                  + f"  ({time.perf_counter() - t0:.0f} s so far)", flush=True)
            results["sets"][name] = {"pool": len(ids), "all_labels_miou": full, "budgets": budgets,
                                     "curves": curves, "labels_to_95": reach}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    _plot(results, args.plot)


def _plot(results: dict, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(results["sets"])
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for c, name in enumerate(names, start=1):
        got = results["sets"][name]
        for k, (strategy, runs) in enumerate(got["curves"].items()):
            mean, spread = np.mean(runs, axis=0), np.std(runs, axis=0)
            fig.add_trace(go.Scatter(x=got["budgets"], y=mean, error_y={"type": "data", "array": spread},
                                     name=strategy, legendgroup=strategy, showlegend=c == 1,
                                     line={"color": ["#888", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"][k % 5]}),
                          row=1, col=c)
        fig.add_hline(y=0.95 * got["all_labels_miou"], line_dash="dot", row=1, col=c)
        fig.update_xaxes(title_text="labeled images", row=1, col=c)
    fig.update_yaxes(title_text="test mIoU", row=1, col=1)
    fig.update_layout(width=1000, height=420, title="Label next vs random (dotted: 95% of the all-labels mIoU)")
    html = path.with_suffix(".html")
    fig.write_html(str(html), include_plotlyjs=True)
    try:
        fig.write_image(str(path))
    except Exception:   # no kaleido: the same page screenshotted by Chromium (playwright, a dev dependency)
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=os.environ.get("SEGLIB_CHROMIUM", "/usr/bin/chromium"),
                                            args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1000, "height": 420})
                page.goto(html.resolve().as_uri())
                page.wait_for_timeout(1500)
                page.screenshot(path=str(path))
                browser.close()
        except Exception as e:
            print(f"no PNG ({type(e).__name__}: {str(e).splitlines()[0][:120]}); the curves are in {html}")
            return
    html.unlink(missing_ok=True)
    print(f"curves: {path}")


if __name__ == "__main__":
    main()
