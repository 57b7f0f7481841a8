"""The Compare page's prediction pass vs the bare models; its cached reopening; and what a U-Net,
a SegFormer and their ensembles score on the demo's validation split after a short training.

    .venv/bin/python bench/bench_predict.py                     # demo of 2600, ~6 min of CPU training
    .venv/bin/python bench/bench_predict.py --epochs 12 --device cuda
    .venv/bin/python bench/bench_predict.py --runs DIR          # reuse runs trained before into DIR

Prints:
- throughput: two models + their mean ensemble through seglib.predict (softmax, argmax, confidence,
  entropy, per-image confusion matrices, ensemble) against the two bare models' forward passes on
  the same prepared batches, and the time ratio (want <= 1.1); also the whole cold pass
  (images read, cache written);
- the second opening of 300 images (three columns read from the disk cache, tables built; want
  < 0.5 s);
- validation mIoU of U-Net, SegFormer and their mean, vote and weighted ensembles. Weighted is
  reported twice: fitted on the validation images themselves (what a notebook does; optimistic)
  and cross-fitted (weights from one half of the validation images, scored on the other half);
- how well the Review page's thumbnail map and each run's learned map (encoder embeddings) set
  the demo's "alien" images apart: the share of an alien's 10 nearest map neighbours that are
  aliens too (chance: the share of aliens), and the ROC AUC of "far from the map's centre".
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from seglib.data import open_dataset, write_demo  # noqa: E402
from seglib.predict import (  # noqa: E402
    Comparison,
    Ensemble,
    dataset_layout,
    fit_ensemble,
    open_members,
    predict,
    shared_val_ids,
)
from seglib.predict.column import ColumnBuilder  # noqa: E402
from seglib.predict.infer import forward_probs, iter_batches, keep_known  # noqa: E402
from seglib.predict.run import add_batch  # noqa: E402
from seglib.train import TrainConfig, train  # noqa: E402

RUNS = (("unet", "Unet", "mobilenet_v2"), ("segformer", "Segformer", "mit_b0"))


def train_runs(data: Path, out: Path, epochs: int, steps: int, device: str) -> None:
    from seglib.train import RunFolder

    for name, arch, encoder in RUNS:
        if RunFolder(out / name).read_status().get("status") == "done":
            continue
        t0 = time.perf_counter()
        cfg = TrainConfig(data=str(data), arch=arch, encoder=encoder, epochs=epochs, batch_size=16,
                          max_steps_per_epoch=steps, lr=2e-3, patience=0, seed=0, device=device)
        result = train(cfg, run_dir=out / name)
        print(f"trained {name} ({arch}/{encoder}): {result['epochs']} epochs x {steps} steps in "
              f"{time.perf_counter() - t0:.0f} s, best val mIoU {result['val']['miou']:.4f}")


def throughput(ds, members, ids, device, batch_size: int, repeats: int) -> None:
    layout = dataset_layout(ds)
    models = {m.name: m.load(device) for m in members}
    batches = list(iter_batches(ds, ids, batch_size, layout.in_channels))
    for b in batches:
        b.images = b.images.to(device)
        b.masks = keep_known(b.masks, layout.num_classes).to(device)
    ens = {"mean ensemble": Ensemble("mean", tuple(models), name="mean ensemble")}

    def bare(b):
        with torch.no_grad():
            for model in models.values():
                model(b.images)

    def compared(b, builders):
        add_batch(builders, ens, b, {n: forward_probs(m, b.images) for n, m in models.items()})

    def timed(fn, *args) -> tuple[float, float]:
        """(wall, CPU) seconds: CPU time of this process barely moves with other processes' load."""
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*args)
        return time.perf_counter() - t0, time.process_time() - c0

    for b in batches[:2]:  # warm-up: allocator, kernels
        bare(b)
        compared(b, {n: ColumnBuilder(n, layout.num_classes) for n in [*models, *ens]})
    walls, cpus = [], []
    for _ in range(repeats):
        # Batch by batch, alternately: both passes see the same load of a shared machine.
        builders = {n: ColumnBuilder(n, layout.num_classes) for n in [*models, *ens]}
        tb, tc = np.zeros(2), np.zeros(2)
        for b in batches:
            tb += timed(bare, b)
            tc += timed(compared, b, builders)
        tc += timed(lambda bs: [builder.build() for builder in bs.values()], builders)
        walls.append((tb[0], tc[0]))
        cpus.append((tb[1], tc[1]))
    n = len(ids)
    wall_bare, wall_cmp = statistics.median(w[0] for w in walls), statistics.median(w[1] for w in walls)
    print(f"\nthroughput on {n} images ({len(batches)} batches of {batch_size}, {device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}), median of {repeats}:")
    print(f"  bare models (2 forward passes):            {n / wall_bare:7.1f} img/s")
    print(f"  comparison (2 models + mean ensemble):     {n / wall_cmp:7.1f} img/s")
    for label, pairs in (("wall-clock", walls), ("CPU-time", cpus)):
        ratios = [c / b for b, c in pairs]
        print(f"  {label} ratio comparison / bare: {statistics.median(ratios):.3f} (each repeat: "
              f"{', '.join(f'{r:.3f}' for r in ratios)}; want <= 1.1)")


def cold_and_cached(ds, members, ids, device) -> None:
    ens = [Ensemble("mean", tuple(m.name for m in members))]
    t0 = time.perf_counter()
    predict(ds, members, ens, ids, device=device, use_cache=True)
    cold = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        pred = predict(ds, members, ens, ids, device=device)
        cmp = Comparison(pred)
        cmp.per_image()
        cmp.scores_table()
        cmp.class_shares()
        times.append(time.perf_counter() - t0)
    assert pred.cached == cmp.names, pred.cached
    print(f"\n{len(ids)} images, 3 columns: cold pass {cold:.2f} s (images read, inference, cache written); "
          f"second opening {statistics.median(times) * 1000:.0f} ms (median of 5: disk cache read, per-image "
          f"and dataset tables; want < 500 ms)")


def ensembles_quality(ds, members, device) -> None:
    val = shared_val_ids(members, ds)
    names = tuple(m.name for m in members)
    kinds = [Ensemble("mean", names), Ensemble("vote", names), Ensemble("weighted", names)]
    cmp = Comparison(predict(ds, members, kinds, val, device=device))
    fitted = next(e for e in cmp.pred.ensembles if e.kind == "weighted")
    rows = {n: cmp.scores(n) for n in cmp.names}
    # Honest weights: fitted on one half of the validation images, scored on the other, and back.
    rng = np.random.default_rng(0)
    order = list(rng.permutation(val))
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    cms, weights = [], []
    for fit_on, score_on in (halves, halves[::-1]):
        ens = fit_ensemble(ds, members, Ensemble("weighted", names, name="cross-fitted"), fit_on, device=device)
        weights.append(ens.weights)
        part = Comparison(predict(ds, members, [ens], score_on, device=device))
        cms.append(part.confusion("cross-fitted"))
    from seglib.metrics import scores

    lay = cmp.layout
    rows["weighted, cross-fitted"] = scores(sum(cms), lay.class_names, lay.scored, lay.background)
    print(f"\nvalidation split: {len(val)} images (the runs' shared split)")
    print(f"  {'':<24} mIoU    no-bg   pix.acc Dice   " + " ".join(f"{c[:8]:>8}" for c in lay.class_names))
    for name, s in rows.items():
        per = " ".join(f"{(v if v is not None else float('nan')):8.3f}" for v in s["per_class_iou"].values())
        print(f"  {name:<24} {s['miou']:.4f} {s['miou_no_bg']:.4f} {s['pixel_accuracy']:.4f} {s['dice']:.4f} {per}")
    best_member = max(rows[n]["miou"] for n in names)
    print(f"  weighted ensemble weights fitted on all {len(val)} images: "
          f"{', '.join(f'{n} {w:.2f}' for n, w in zip(names, fitted.weights, strict=True))}; cross-fitted halves: "
          + "; ".join(", ".join(f"{w:.2f}" for w in ws) for ws in weights))
    for name in ("mean ensemble", "vote ensemble", "weighted ensemble", "weighted, cross-fitted"):
        gain = rows[name]["miou"] - best_member
        print(f"  {name}: {'beats' if gain > 0 else 'does not beat'} its best member ({gain:+.4f} mIoU)")


def learned_maps(ds, members, truth_path: Path, device) -> None:
    import json

    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    from seglib.outliers.projection import projection
    from seglib.predict import embedding_projection
    from seglib.stats import compute_stats

    aliens = set(json.loads(truth_path.read_text())["alien"])
    stats = compute_stats(ds)
    maps = {"thumbnails + class fractions (Review map)": projection(ds, stats)}
    for m in members:
        t0 = time.perf_counter()
        maps[f"{m.name} encoder"] = embedding_projection(ds, m, stats.ids, device=device)
        print(f"  ({m.name} embeddings of {len(stats.ids)} images: {time.perf_counter() - t0:.1f} s)")
    is_alien = np.array([i in aliens for i in stats.ids])
    print(f"\nalien images apart on the 2-D map ({is_alien.sum()} aliens of {len(is_alien)}; kNN purity by chance "
          f"{is_alien.mean():.3f}):")
    for name, proj in maps.items():
        xy = proj.loc[stats.ids].to_numpy()
        ok = ~np.isnan(xy).any(1)
        xy, lab = (xy[ok] - np.median(xy[ok], 0)) / xy[ok].std(0), is_alien[ok]
        _, idx = NearestNeighbors(n_neighbors=11).fit(xy).kneighbors(xy[lab])
        purity = lab[idx[:, 1:]].mean()
        auc = roc_auc_score(lab, np.linalg.norm(xy, axis=1))
        print(f"  {name:<44} kNN purity {purity:.3f}   AUC of distance from centre {auc:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2600, help="demo images (10%% become the validation split)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=60, help="training steps per epoch (batch 16)")
    ap.add_argument("--runs", help="folder for the two runs (kept; reused when they exist)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--throughput-images", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["SEGLIB_DATA_DIR"] = str(tmp / "data")  # a fresh cache and review store
        runs = Path(args.runs) if args.runs else tmp / "runs"
        data = runs / f"demo-{args.n}.npz"
        if not data.exists():
            runs.mkdir(parents=True, exist_ok=True)
            write_demo(data, n=args.n, seed=0)
        train_runs(data, runs, args.epochs, args.steps, args.device)
        ds = open_dataset(data)
        members, problems = open_members([runs / name for name, _, _ in RUNS], dataset_layout(ds))
        assert not problems, problems
        throughput(ds, members, ds.labeled_ids[: args.throughput_images], args.device, 32, args.repeats)
        cold_and_cached(ds, members, ds.labeled_ids[:300], args.device)
        ensembles_quality(ds, members, args.device)
        learned_maps(ds, members, data.with_suffix(".truth.json"), args.device)


if __name__ == "__main__":
    main()
