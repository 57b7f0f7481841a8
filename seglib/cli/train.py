"""Training commands: ``seglib train DATASET --arch ARCH --encoder ENC --out RUN_DIR ...`` and
``seglib models``. Training runs the same engine as the app; under
``torchrun --nproc_per_node=N -m seglib train ...`` each process trains a shard (DDP) and only
rank 0 writes and prints."""
from __future__ import annotations

import json
import os
import sys

from .common import CliError, add_command, add_unlabeled, print_json

# Defaults live in TrainConfig; the parser leaves every flag at None so that only the flags a
# user gives override them, and building the parser imports no torch (``seglib --help`` stays
# fast). tests/test_cli_train.py checks that the defaults quoted in the help match TrainConfig.
HELP_DEFAULTS = {"arch": "Unet", "encoder": "resnet18", "epochs": 30, "batch_size": 16, "lr": 0.001,
                 "loss": "focal+dice", "sampler": "oversample", "optimizer": "adamw", "scheduler": "plateau",
                 "monitor": "miou", "patience": 8}


def _train_args(p):
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("--out", required=True, help="run folder to create (or to continue with --resume)")
    add_train_options(p)
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--split", help='a JSON file {"train": [ids], "val": [ids]} instead of a stratified split')
    p.add_argument("--split-by", choices=("image", "folder", "overlap"),
                   help="what the split keeps whole: image (default); folder (an image id's first folder, e.g. "
                        "'Tile 3'); overlap (images that share pixels: overlapping crops, copies, video frames)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last weights")
    p.add_argument("--config", metavar="JSON", help="a whole TrainConfig as JSON (config.json of a run); the other "
                   "training flags are ignored. The job manager writes it into --out before launching")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help='print {"run", "epochs", "best_epoch", "val"} as JSON')


def add_train_options(p):
    """The flags of a training configuration (model, loss, data, optimisation, machine): ``seglib
    train`` and ``seglib quality`` (whose fold runs train with them) share them."""
    d = HELP_DEFAULTS
    p.set_defaults(val_fraction=None, split=None, split_by=None)   # train's own flags, absent elsewhere
    p.add_argument("--arch", help=f"architecture (default {d['arch']}; see `seglib models`)")
    p.add_argument("--encoder", help=f"encoder (default {d['encoder']})")
    p.add_argument("--encoder-weights", metavar="NAME|FILE",
                   help="pretrained weights smp lists for the encoder (imagenet, ssl, ...; timm's tags for tu-), "
                        "from the Hugging Face cache (`seglib weights fetch`), or a local .safetensors/.pth "
                        "(default: random)")
    p.add_argument("--epochs", type=int, help=f"default {d['epochs']}")
    p.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    p.add_argument("--lr", type=float, help=f"default {d['lr']}")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--loss", help="formula of ce, focal, dice, jaccard, tversky, lovasz, e.g. 'focal+dice' or "
                                  f"'0.5*ce+dice' (default {d['loss']})")
    p.add_argument("--focal-gamma", type=float)
    p.add_argument("--tversky-alpha", type=float)
    p.add_argument("--tversky-beta", type=float)
    p.add_argument("--class-weights", help="none | inverse | median | comma-separated values, one per class id")
    p.add_argument("--exclude-background", action="store_true", default=None,
                   help="losses and the monitored mIoU leave the background class out (the class file's "
                        "\"background\": true class, or the one named background/bg)")
    p.add_argument("--aug", help="augmentation pipeline: a saved name or an A.save .json/.yaml")
    p.add_argument("--sampler", help=f"uniform | oversample | presence (default {d['sampler']})")
    p.add_argument("--sampler-classes", help="class ids to oversample, e.g. 4 or 3,4 (default: the rarest)")
    p.add_argument("--sampler-factor", type=float)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--crop", type=int, metavar="S", help="train on random S x S crops (S a multiple of 32); "
                      "validation on whole images by tiles. Default: chosen from the image sizes (auto)")
    size.add_argument("--resize", type=int, metavar="S", help="train on images whose longer side is resized to S; "
                      "predictions are resized back for scoring")
    size.add_argument("--full", action="store_true", default=None, help="train on whole images (small ones)")
    p.add_argument("--rare-crop-share", type=float, help="share of crops centred on a pixel of the rarest class "
                                                         "(default 1/3)")
    p.add_argument("--optimizer", help=f"adamw | adam | sgd (default {d['optimizer']})")
    p.add_argument("--scheduler", help=f"plateau | cosine | onecycle | none (default {d['scheduler']})")
    p.add_argument("--monitor", help=f"miou | miou_no_bg | dice | pixel_accuracy | val_loss (default {d['monitor']})")
    p.add_argument("--patience", type=int, help=f"early stopping; 0 = off (default {d['patience']})")
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--include-excluded", action="store_true",
                   help="also train on images marked 'exclude' in the review store")
    p.add_argument("--original-masks", action="store_true",
                   help="train on the dataset files' masks, ignoring the corrected ones saved in the review store")
    add_unlabeled(p)
    p.add_argument("--max-steps-per-epoch", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--amp", help="auto | off | bf16 | fp16 (default auto: on for CUDA)")
    p.add_argument("--workers", type=int, help="DataLoader workers (default -1 = auto)")
    p.add_argument("--seed", type=int)


_FIELDS = ("arch", "encoder", "encoder_weights", "epochs", "batch_size", "lr", "weight_decay", "loss", "focal_gamma",
           "tversky_alpha", "tversky_beta", "exclude_background", "aug", "sampler", "sampler_factor", "optimizer",
           "scheduler", "monitor", "patience", "grad_clip", "val_fraction", "split_by", "max_steps_per_epoch", "device",
           "amp", "workers", "seed")


def config_from_args(args):
    """A TrainConfig from the flags given (the rest keep TrainConfig's defaults)."""
    from ..train.config import TrainConfig

    given = {f: getattr(args, f) for f in _FIELDS if getattr(args, f) is not None}
    weights = args.class_weights
    if weights is not None:
        if weights in ("none", "inverse", "median"):
            given["class_weights"] = weights
        else:
            try:
                given["manual_class_weights"] = [float(v) for v in weights.split(",")]
            except ValueError:
                raise CliError(f"--class-weights {weights!r}: use none, inverse, median or numbers") from None
            given["class_weights"] = "manual"
    if args.crop is not None:
        given.update(input_mode="crop", input_size=args.crop)
    elif args.resize is not None:
        given.update(input_mode="resize", input_size=args.resize)
    elif args.full:
        given["input_mode"] = "full"
    if args.rare_crop_share is not None:
        given["rare_crop_share"] = args.rare_crop_share
    if args.sampler_classes:
        try:
            given["sampler_classes"] = [int(v) for v in args.sampler_classes.split(",")]
        except ValueError:
            raise CliError(f"--sampler-classes {args.sampler_classes!r}: use class ids like 4 or 3,4") from None
    if args.split:
        try:
            with open(args.split) as f:
                split = json.load(f)
            given["train_ids"], given["val_ids"] = list(split["train"]), list(split["val"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CliError(f"--split {args.split}: expected {{\"train\": [...], \"val\": [...]}} ({e})") from None
    return TrainConfig(data=args.dataset, unlabeled=list(args.unlabeled) or None,
                       leave_out_excluded=not args.include_excluded, original_masks=args.original_masks, **given)


def cmd_train(args) -> int:
    from ..data import DatasetError
    from ..models import ModelError
    from ..train import CheckpointError, ConfigError, ProgressBar, RunFolder, TrainConfig, TrainingError, train

    rank = int(os.environ.get("RANK", "0"))
    run = RunFolder(args.out)
    prepared = bool(args.config) and os.path.realpath(args.config) == os.path.realpath(run.file("config.json"))
    if not args.resume and run.exists() and not prepared:  # the job manager's folder holds its own config
        raise CliError(f"{args.out}: already holds a run; use --resume to continue it or another --out")
    if args.resume:
        if not run.exists():
            raise CliError(f"{args.out}: no run to resume (config.json missing)")
        # The run's own configuration; --epochs (a new total) and --device may change.
        try:
            cfg = TrainConfig.from_dict(run.read_config())
        except (CheckpointError, ConfigError) as e:
            raise CliError(str(e)) from None
        cfg.epochs = args.epochs or cfg.epochs
        cfg.device = args.device or cfg.device
    elif args.config:
        cfg = _config_file(args.config)
    else:
        cfg = config_from_args(args)
    from ..train.process_jobs import RunFolderWatch

    # a `cancel` file in the run folder stops every rank; progress files for the job manager
    watch = RunFolderWatch(args.out, rank, progress=os.environ.get("SEGLIB_JOB") == "1")
    bars = [watch] + ([] if rank != 0 else [_split_warning()]) + ([] if args.quiet or rank != 0 else [ProgressBar()])
    try:
        result = train(cfg, run_dir=args.out, callbacks=bars, resume=args.resume)
    except (ConfigError, ModelError, TrainingError, CheckpointError, DatasetError) as e:
        raise CliError(str(e)) from None
    if rank != 0:
        return 0
    if args.json:
        print_json({k: result[k] for k in ("run", "epochs", "best_epoch", "val", "status", "world_size")})
    else:
        v = result["val"]
        print(f"{result['run']}: {result['status']} after {result['epochs']} epochs; best epoch "
              f"{result['best_epoch']}: mIoU {v.get('miou', float('nan')):.4f} "
              f"(no background {v.get('miou_no_bg', float('nan')):.4f})", file=sys.stderr)
    return 0


def _split_warning():
    """A callback saying on stderr, as training starts, when its split puts images that share
    pixels on both sides (the split is drawn once training has read the dataset)."""
    from ..train.callbacks import Callback
    from ..train.split import SplitLeak, leak_warning

    class SplitWarning(Callback):
        def on_train_start(self, info: dict) -> None:
            split = info["config"].get("resolved", {}).get("split", {})
            if split.get("groups_cut"):
                leak = SplitLeak(split["groups_cut"], split["images_in_cut_groups"], split["val_images_sharing"],
                                 split["groups"])
                print(f"warning: {leak_warning(leak, split['by'])} (--split-by overlap)", file=sys.stderr)

    return SplitWarning()


def _config_file(path: str):
    from ..train import ConfigError, TrainConfig

    try:
        with open(path) as f:
            return TrainConfig.from_dict(json.load(f))
    except (OSError, ValueError, TypeError, ConfigError) as e:
        raise CliError(f"--config {path}: not a TrainConfig JSON ({e})") from None


def _models_args(p):
    p.add_argument("--json", action="store_true", help="print architectures, encoders and invalid pairs as JSON")
    p.add_argument("--verify", action="store_true", help="build every offered pair and run it on 64x128 (slow)")


def cmd_models(args) -> int:
    from ..models import ARCHITECTURES, ENCODERS, ModelSpec, catalog, problem

    rows = catalog()
    if args.verify:
        for r in rows:
            if r["ok"]:
                why = problem(ModelSpec(r["arch"], r["encoder"], 1, 2))
                r.update(ok=why is None, reason=why or "")
    doc = {"architectures": {a: {"summary": i.summary, "multiple": i.multiple, "min_side": i.min_side,
                                 "needs_batch_of_two": i.needs_batch_of_two} for a, i in ARCHITECTURES.items()},
           "encoders": ENCODERS,
           "invalid": [{"arch": r["arch"], "encoder": r["encoder"], "reason": r["reason"]}
                       for r in rows if not r["ok"]]}
    if args.json:
        print_json(doc)
        return 0
    print("Architectures:")
    for a, i in ARCHITECTURES.items():
        print(f"  {a:<14} {i.summary}")
    print("Encoders (any smp encoder or tu-<timm model> also works):")
    for e, s in ENCODERS.items():
        print(f"  {e:<24} {s}")
    print("Combinations that cannot work:")
    for r in doc["invalid"]:
        print(f"  {r['arch']}/{r['encoder']}: {r['reason']}")
    return 0


def register(sub) -> None:
    add_command(sub, "train", "train a segmentation model (the app's engine) into a run folder", _train_args,
                cmd_train)
    add_command(sub, "models", "list architectures and encoders, and which pairs cannot work and why",
                _models_args, cmd_models)
