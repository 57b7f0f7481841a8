"""How well does out-of-fold label quality find realistic label errors, and does fixing what it
suggests make the next model better?

For each clean dataset made here (the demo's terrain with nothing injected; aerial-like scenes of
discrete objects), errors of five kinds (seglib.quality.inject: dropped, swapped, boundary,
shifted, coarse) go into a known share of the images each. Then, per kind and overall, AUPRC,
ROC AUC and precision / recall at N (N = the number corrupted) of:

  (a) detectors   today's outlier detectors (label_stats, shared_mask, ...): an image's highest flag score
  (b) in-sample   cleanlab softmin on the predictions of one model trained on every image (the naive way)
  (c) oof softmin cleanlab softmin on out-of-fold predictions (K fold models, each image by the one that never saw it)
  (d) oof surprise the mean surprise of an image's worst 0.5% of pixels, out-of-fold (seglib.quality.surprise)
  (e) seglib quality the product's ranking (seglib.quality.score.rank: softmin and surprise, in robust SDs, summed)
  (f) + regions   (e) combined as before with the region, boundary, shift and spread checks (noisy-or of the
                  worst robust z and the worst region's severity): what the region checks add to the score

and the payoff, on a clean test split: mIoU of a model trained on the noisy labels, after fixing the
top N of (e) (their true masks restored), after fixing N random images, and on clean labels; the
share of the noisy-to-clean gap each recovers.

    .venv/bin/python bench/bench_label_errors.py                       # both sets, ~25 min on 2 CPU cores
    .venv/bin/python bench/bench_label_errors.py --sets terrain --n 200 --epochs 2 --folds 3   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from label_error_sets import AERIAL_CLASSES, aerial_scenes, terrain  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

SETS = {"terrain": (terrain, None), "aerial": (aerial_scenes, AERIAL_CLASSES)}


def _write(path: Path, images, masks, names) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=images, masks=masks)
    if names:
        doc = [{"id": i, "name": n} for i, n in enumerate(names)]
        path.with_name(path.stem + ".classes.json").write_text(json.dumps(doc))
    return str(path)


def ranking_metrics(score: np.ndarray, positive: np.ndarray, pool: np.ndarray) -> dict:
    """AUPRC, ROC AUC, precision and recall at N over the images in ``pool``."""
    s, y = score[pool], positive[pool]
    n = int(y.sum())
    top = np.argsort(-s, kind="stable")[:n]
    hits = int(y[top].sum())
    return {"auprc": float(average_precision_score(y, s)), "roc_auc": float(roc_auc_score(y, s)),
            "p_at_n": hits / max(n, 1), "r_at_n": hits / max(n, 1), "n": n, "base_rate": float(y.mean())}


def with_regions(ms, score: np.ndarray) -> np.ndarray:
    """(e)'s score combined with the region and boundary checks the way an earlier ranking did:
    noisy-or of the score, the worst robust z of shift, spread and per-class boundary offset,
    and the worst region finding's severity."""
    from seglib.outliers.base import robust_z, z_score

    def one_sided(x):
        return np.clip(robust_z(np.asarray(x, float)), 0, None)

    z = np.maximum(one_sided([np.hypot(*m.shift) for m in ms]), one_sided([m.spread for m in ms]))
    for c in sorted({c for m in ms for c in m.offsets}):
        rows = [k for k, m in enumerate(ms) if c in m.offsets]
        zc = np.abs(robust_z(np.array([ms[k].offsets[c] for k in rows])))
        z[rows] = np.maximum(z[rows], zc)
    aux = np.array([z_score(v) for v in z])
    severity = np.array([m.severity for m in ms])
    return 1 - (1 - score) * (1 - aux) * (1 - severity)


def train_run(cfg_kwargs: dict, data: str, out: Path, train_ids=None, val_ids=None) -> Path:
    from seglib.train import TrainConfig, train

    cfg = TrainConfig.quick(data, train_ids=train_ids, val_ids=val_ids, **cfg_kwargs)
    if not (out / "best.safetensors").is_file():
        train(cfg, out, callbacks=())
    return out


def test_miou(run: Path, test_npz: str) -> float:
    from seglib.data import open_dataset
    from seglib.predict import Comparison, dataset_layout, open_members, predict

    ds = open_dataset(test_npz)
    layout = dataset_layout(ds)
    members, problems = open_members([run], layout)
    assert members, problems
    cmp = Comparison(predict(ds, members, ids=ds.labeled_ids, device="cpu", use_cache=False, layout=layout))
    return float(cmp.scores(members[0].name)["miou"])


def one_set(name: str, args, root: Path) -> dict:
    from seglib.data import open_dataset
    from seglib.outliers import detect
    from seglib.predict import open_member
    from seglib.predict.quality import label_quality
    from seglib.quality import cross_validate, score_labels
    from seglib.quality.inject import KINDS, inject_errors
    from seglib.stats import compute_stats
    from seglib.train import TrainConfig

    make, names = SETS[name]
    images, clean_all = make(args.n + args.n_test, args.seed)
    images_tr, clean = images[: args.n], clean_all[: args.n]
    noisy, truth = inject_errors(clean, args.share, args.seed, background=0)
    here = root / name
    data = _write(here / "noisy.npz", images_tr, noisy, names)
    clean_npz = _write(here / "clean.npz", images_tr, clean, names)
    test_npz = _write(here / "test.npz", images[args.n:], clean_all[args.n:], names)
    ds = open_dataset(data)
    ids = list(ds.ids)   # npz ids: the index, zero-padded
    (here / "truth.json").write_text(json.dumps({k: [ids[i] for i in v] for k, v in truth.items()}))
    kind_of = np.array([""] * args.n, dtype=object)
    for k, v in truth.items():
        kind_of[v] = k
    corrupted = kind_of != ""
    changed = np.array([(noisy[i] != clean[i]).mean() for i in range(args.n)])
    print(f"[{name}] {args.n} images, {int(corrupted.sum())} corrupted "
          f"({', '.join(f'{k} {len(v)}' for k, v in truth.items())}); pixels changed in a corrupted mask: "
          f"median {np.median(changed[corrupted]):.1%}", flush=True)
    knobs = dict(epochs=args.epochs, max_steps_per_epoch=0, batch_size=16, device="cpu", seed=args.seed)
    timings = {}

    t = time.perf_counter()
    flags = detect(ds, compute_stats(ds), use_cache=False)
    det = flags.groupby("image_id")["score"].max().reindex(ids).fillna(0.0).to_numpy()
    timings["detectors"] = time.perf_counter() - t

    t = time.perf_counter()
    naive = train_run(knobs, data, here / "naive", train_ids=ids, val_ids=ids[: max(16, args.n // 10)])
    lq = label_quality(ds, open_member(naive), ids=ids, device="cpu", use_cache=False)
    insample = (1 - lq.table.set_index("image_id")["quality"]).reindex(ids).to_numpy()
    timings["in-sample (train + predict)"] = time.perf_counter() - t

    t = time.perf_counter()
    base = TrainConfig.quick(data, **knobs)
    results = cross_validate(base, here / "folds", args.folds, log=lambda m: print(f"[{name}] {m}", flush=True))
    assert all(r["status"] == "done" for r in results), results
    timings[f"{args.folds} folds (train)"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = score_labels(ds, here / "folds", folds=args.folds, device="cpu")
    timings["out-of-fold scoring"] = time.perf_counter() - t
    table = scores.table.set_index("image_id")
    oof_soft = (-np.log(np.clip(table["quality"], 1e-12, None))).reindex(ids).to_numpy()
    oof_full = table["score"].reindex(ids).to_numpy()
    ms = [scores.measures[i] for i in ids]
    surprise = np.array([m.surprise for m in ms])
    rankings = {"(a) detectors": det, "(b) in-sample softmin": insample, "(c) oof softmin": oof_soft,
                "(d) oof surprise": surprise, "(e) seglib quality": oof_full,
                "(f) + regions": with_regions(ms, oof_full)}
    metrics = {}
    for label, s in rankings.items():
        row = {"all": ranking_metrics(s, corrupted, np.ones(args.n, bool))}
        for k in KINDS:
            if truth.get(k):
                row[k] = ranking_metrics(s, kind_of == k, (kind_of == k) | ~corrupted)
        metrics[label] = row

    # The payoff: fix the top N of (e), or N random images, and train again.
    n_bad = int(corrupted.sum())
    if args.no_payoff:
        return {"set": name, "n": args.n, "n_test": args.n_test, "share_per_kind": args.share, "folds": args.folds,
                "epochs": args.epochs, "truth_counts": {k: len(v) for k, v in truth.items()}, "metrics": metrics,
                "payoff": {}, "timings_s": timings}
    top = np.argsort(-oof_full, kind="stable")[:n_bad]
    rand = np.random.default_rng(args.seed + 1).choice(args.n, n_bad, replace=False)
    payoff = {}
    t = time.perf_counter()
    for label, fix in (("noisy", None), ("fixed top N", top), ("fixed N random", rand), ("clean", "all")):
        if fix is None:
            path = data
        elif isinstance(fix, str):
            path = clean_npz
        else:
            m = noisy.copy()
            m[fix] = clean[fix]
            path = _write(here / f"{label.replace(' ', '_')}.npz", images_tr, m, names)
        run = train_run(knobs, path, here / f"payoff-{label.replace(' ', '_')}")
        fixed = 0 if fix is None else n_bad if isinstance(fix, str) else int(corrupted[fix].sum())
        payoff[label] = {"test_miou": test_miou(run, test_npz), "corrupted_left": n_bad - fixed}
    timings["payoff (4 trainings)"] = time.perf_counter() - t
    gap = payoff["clean"]["test_miou"] - payoff["noisy"]["test_miou"]
    for v in payoff.values():
        v["gap_recovered"] = (v["test_miou"] - payoff["noisy"]["test_miou"]) / gap if abs(gap) > 1e-9 else float("nan")
    return {"set": name, "n": args.n, "n_test": args.n_test, "share_per_kind": args.share, "folds": args.folds,
            "epochs": args.epochs, "truth_counts": {k: len(v) for k, v in truth.items()}, "metrics": metrics,
            "payoff": payoff, "timings_s": timings}


def print_report(r: dict) -> None:
    print(f"\n== {r['set']}: {r['n']} images ({r['share_per_kind']:.0%} of them per kind), {r['folds']} folds, "
          f"{r['epochs']} epochs; Unet/mobilenet_v2 ==")
    kinds = [k for k in ("all", "dropped", "swapped", "boundary", "shifted", "coarse")
             if k in r["metrics"]["(e) seglib quality"]]
    print(f"{'AUPRC':<24}" + "".join(f"{k:>10}" for k in kinds))
    for label, row in r["metrics"].items():
        print(f"{label:<24}" + "".join(f"{row[k]['auprc']:>10.3f}" for k in kinds))
    print(f"{'ROC AUC':<24}")
    for label, row in r["metrics"].items():
        print(f"{label:<24}" + "".join(f"{row[k]['roc_auc']:>10.3f}" for k in kinds))
    print(f"{'precision = recall at N':<24}")
    for label, row in r["metrics"].items():
        print(f"{label:<24}" + "".join(f"{row[k]['p_at_n']:>10.3f}" for k in kinds))
    print("payoff (clean test split):" if r["payoff"] else "payoff: not measured (--no-payoff)")
    for label, v in r["payoff"].items():
        print(f"  {label:<16} mIoU {v['test_miou']:.4f}  gap recovered {v['gap_recovered']:+.0%}  "
              f"corrupted labels left {v['corrupted_left']}")
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["timings_s"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="terrain,aerial")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--share", type=float, default=0.05, help="share of the images given each kind of error")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/bench_label_errors")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-payoff", action="store_true", help="rankings only: no retraining on fixed labels")
    args = ap.parse_args()
    root = Path(args.out)
    os.environ.setdefault("SEGLIB_DATA_DIR", str(root / "data"))
    os.environ.setdefault("SEGLIB_CACHE_DIR", str(root / "cache"))
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    reports = [one_set(s, args, root) for s in args.sets.split(",")]
    for r in reports:
        print_report(r)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
