"""Commands that run models: `ens train-folds` and `ens predict`, and their progress lines.

Torch is imported inside the commands, never at import: `ens blend` and `ens leaderboard` load this module too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.artifacts.writer import PREDICT, TRAIN, ExperimentResult, Verb
from ensemble.blend.teacher import DISTILL_ALPHA, TeacherOptions
from ensemble.cli.app import ForceOption, TtaMergeOption, TtaOption, WorkspaceOption, app, default_help, err, handles_errors, out, parse_list
from ensemble.cli.tables import score_text
from ensemble.config import AUTO_SIZE_RANGE, PRETRAINED_BACKBONE_LR_SCALE, PRETRAINED_WARMUP_EPOCHS, TrainSettings, Workspace, override
from ensemble.errors import EnsError
from ensemble.nets.attention import ATTENTION
from ensemble.training import losses
from ensemble.training.augment import FILLS, TRANSFORMS
from ensemble.training.optim import OPTIMIZERS, SCHEDULES
from ensemble.training.recipe import CLASS_WEIGHTS


def print_event(event: object) -> None:
    from ensemble.data.cache import ImagesRead
    from ensemble.training.events import EpochEnd
    from ensemble.training.experiment import FoldsSent, RecordedKept
    from ensemble.training.features import FeaturesReady
    from ensemble.training.fold_job import FoldEnd, FoldStart
    from ensemble.training.preflight import WeightsChecked
    from ensemble.training.student import LessonsMade

    formats = {
        ImagesRead: lambda e: (
            f"read {e.n_train} train and {e.n_test} test images at {e.size}px in {e.seconds:.1f}s"
            + (" (from the image cache)" if e.from_cache else "")
        ),
        WeightsChecked: lambda e: f"pretrained: {e.summary}",
        FeaturesReady: lambda e: (
            f"frozen features: {'x'.join(map(str, e.shape))}{' maps of the frozen stages' if len(e.shape) > 1 else ''} for each of {e.n_images} images at {e.size}px, "
            + (f"computed in {e.seconds:.1f}s" if e.computed else "read back (an earlier run of this experiment computed them)")
        ),
        RecordedKept: lambda e: (
            f"note: {e.name} resumes with its recorded "
            + ", ".join(f"{key} {old} (default now {new})" for key, (old, new) in e.kept.items())
            + "; set them, or --force, to train it with today's"
        ),
        LessonsMade: lessons_text,
        FoldsSent: lambda e: f"training folds {','.join(map(str, e.folds))} on {e.where}",
        FoldStart: lambda e: f"fold {e.fold}: training on {e.n_train}, holding out {e.n_valid}" + (" (resuming)" if e.resuming else ""),
        EpochEnd: lambda e: (
            f"  fold {e.fold} epoch {e.epoch}/{e.epochs}" + (f" stage {e.stage}/{e.stages} {e.size}px" if e.stages > 1 else "")
            + f"  train loss {e.train_loss:.4f}  "
            f"valid loss {e.valid_loss:.4f}  {e.metric} {e.valid_score:.4f}  {e.seconds:.1f}s"
        ),
        FoldEnd: lambda e: f"fold {e.fold}: {e.metric} {e.score:.4f} in {e.seconds:.1f}s",
    }
    if type(event) in formats:  # step events: only the live display (cli/progress.py) shows them
        err.print(formats[type(event)](event))


def lessons_text(event) -> str:
    """What a student learns, e.g. 'teacher: pseudo-labels from blend b1 (soft) on 500 of 500 test images a fold; ...'."""
    parts = []
    pseudo, distill = event.record["pseudo"], event.record["distill"]
    if pseudo:
        counts = sorted(set(event.pseudo_rows.values()))
        shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}..{counts[-1]}"
        kind = "soft" if pseudo["threshold"] == 0 else f"hard, at least {pseudo['threshold']:g} sure"
        parts.append(f"pseudo-labels from blend {pseudo['blend']} ({kind}, weight {pseudo['weight']:g}) on {shown} of {event.n_test} test images a fold")
    if distill:
        parts.append(f"distilled from blend {distill['blend']} (alpha {distill['alpha']:g})")
    nested = all(record["nested"] for record in (pseudo, distill) if record)
    how = "each fold's from the blend fitted without it" if nested else "LEAKY: the full blend for every fold"
    return f"teacher: {'; '.join(parts)}; {how}"


@app.command("train-folds")
@handles_errors
def train_folds(
    name: Annotated[str, typer.Option("--name", "-n", help="Experiment name: the folder models/NAME.")],
    model: Annotated[Optional[str], typer.Option(help=f"timm model name, e.g. resnet18. {default_help(TrainSettings, 'model')}")] = None,
    size: Annotated[Optional[int], typer.Option(help=f"Image side in pixels: one stage at this size, replacing any --sizes schedule; auto: the training images' median side, within {AUTO_SIZE_RANGE[0]}..{AUTO_SIZE_RANGE[1]}. {default_help(TrainSettings, 'size')}")] = None,
    sizes: Annotated[Optional[str], typer.Option(help="Progressive resizing: growing stage sizes, e.g. 24,32; the last is the inference size. (default: ens.toml, else one stage at --size)")] = None,
    epochs: Annotated[Optional[str], typer.Option(help=f"Passes over the fold's training rows: one count for every stage, or one per --sizes stage, e.g. 2,3. {default_help(TrainSettings, 'epochs')}")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=f"Images per step, at least 2. {default_help(TrainSettings, 'batch_size')}")] = None,
    lr: Annotated[Optional[float], typer.Option(help=f"Peak learning rate of the --schedule. {default_help(TrainSettings, 'lr')}")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=f"Weight decay (decoupled for adamw, L2 for sgd). {default_help(TrainSettings, 'weight_decay')}")] = None,
    folds: Annotated[Optional[str], typer.Option("--folds", help="Folds to train, e.g. 0,1 (default: all)")] = None,
    device: Annotated[Optional[str], typer.Option(help=f"auto, cpu, cuda or cuda:N. {default_help(TrainSettings, 'device')}")] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Seeds weights, shuffling and dropout. {default_help(TrainSettings, 'seed')}")] = None,
    attention: Annotated[Optional[str], typer.Option(help=f"Attention block: {', '.join(ATTENTION.names())}; on the final feature map. {default_help(TrainSettings, 'attention')}")] = None,
    attention_in_blocks: Annotated[Optional[bool], typer.Option("--attention-in-blocks/--attention-on-features", help="Put the --attention block inside every residual block (ResNet family) instead of on the final feature map.")] = None,
    pretrained: Annotated[Optional[str], typer.Option(metavar="FILE|timm", help="Backbone weights: a .safetensors or torch state-dict file, or 'timm' for timm's pretrained tag (online).")] = None,
    train_blocks: Annotated[Optional[int], typer.Option(help=f"Train only the last N backbone stages (0: linear probe; -1: all). {default_help(TrainSettings, 'train_blocks')}")] = None,
    freeze_bn: Annotated[Optional[bool], typer.Option("--freeze-bn/--no-freeze-bn", help="Keep every backbone BatchNorm's statistics and weights fixed. (default: ens.toml, else auto: off)")] = None,
    unfreeze_after: Annotated[Optional[int], typer.Option(help=f"Train only the new head (and attention) for E epochs, then the backbone. (default: ens.toml, else auto: {PRETRAINED_WARMUP_EPOCHS} with --pretrained, 0 without)")] = None,
    backbone_lr_scale: Annotated[Optional[float], typer.Option(help=f"Backbone lr = lr x this; the head keeps lr. (default: ens.toml, else auto: {PRETRAINED_BACKBONE_LR_SCALE} with --pretrained, 1.0 without)")] = None,
    frozen_features: Annotated[Optional[bool], typer.Option("--frozen-features/--no-frozen-features", help="With --pretrained: the backbone's features computed once per image at --size, then a linear head per fold (seconds a fold; e.g. --size 288); with --top-blocks N, the frozen stages' maps once and the top N stages trained per fold. (default: ens.toml, else off)")] = None,
    top_blocks: Annotated[Optional[int], typer.Option("--top-blocks", help=f"With --frozen-features: the top N backbone stages and the classifier train per fold on the frozen stages' maps, computed once (0: a linear head). {default_help(TrainSettings, 'top_blocks')}")] = None,
    augment: Annotated[Optional[str], typer.Option(help=f"Train-time transforms, a comma list of {', '.join(TRANSFORMS.names())} (e.g. hflip,shift:0.1,scale:0.7-1,erase:0.25), or none. {default_help(TrainSettings, 'augment')}")] = None,
    augment_fill: Annotated[Optional[str], typer.Option(help=f"What shift, scale and rotate bring in from outside the image: {' or '.join(FILLS.names())} (the colour 0 after normalisation). {default_help(TrainSettings, 'augment_fill')}")] = None,
    ema: Annotated[Optional[float], typer.Option(help=f"Decay of the weights' moving average, e.g. 0.99; its weights are the ones scored and saved; 0 = off. {default_help(TrainSettings, 'ema')}")] = None,
    mixup: Annotated[Optional[float], typer.Option(help=f"Mixup Beta(A, A), e.g. 0.2; 0 = off. {default_help(TrainSettings, 'mixup')}")] = None,
    cutmix: Annotated[Optional[float], typer.Option(help=f"CutMix Beta(A, A), e.g. 1.0; 0 = off. {default_help(TrainSettings, 'cutmix')}")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help=f"Label smoothing, e.g. 0.1. {default_help(TrainSettings, 'label_smoothing')}")] = None,
    class_weights: Annotated[Optional[str], typer.Option(help=f"One of: {', '.join(CLASS_WEIGHTS.names())} (multi-label: each tag's positives weighed by its negatives / positives). {default_help(TrainSettings, 'class_weights')}")] = None,
    loss: Annotated[Optional[str], typer.Option(help=f"auto (the task's: cross_entropy, bce per tag, mse), or one of: {', '.join(losses.names())}; a regression also takes huber, or bce on the target scaled to 0..1. {default_help(TrainSettings, 'loss')}")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help=f"One of: {', '.join(OPTIMIZERS.names())}. {default_help(TrainSettings, 'optimizer')}")] = None,
    schedule: Annotated[Optional[str], typer.Option(help=f"Learning-rate schedule over all steps, one of: {', '.join(SCHEDULES.names())}. {default_help(TrainSettings, 'schedule')}")] = None,
    warmup: Annotated[Optional[float], typer.Option(help=f"Fraction of the steps warming the learning rate up. {default_help(TrainSettings, 'warmup')}")] = None,
    clip_grad: Annotated[Optional[float], typer.Option(help=f"Clip the gradient norm to N; 0 = off. {default_help(TrainSettings, 'clip_grad')}")] = None,
    tta: TtaOption = None,
    tta_merge: TtaMergeOption = None,
    pseudo: Annotated[Optional[str], typer.Option(metavar="BLEND", help="Also train on the test images, labelled by blend BLEND (submissions/BLEND.json): fold k's labels come from the blend fitted without fold k, applied to its members' fold-k models, so no OOF score is inflated.")] = None,
    pseudo_threshold: Annotated[Optional[float], typer.Option(help="0: the teacher's soft targets for every test image; T in (0, 1): hard labels for the images the teacher is at least T sure of. (default: 0)")] = None,
    pseudo_weight: Annotated[Optional[float], typer.Option(help="Each pseudo-labelled image's weight in the loss; a train image weighs 1. (default: 1)")] = None,
    distill: Annotated[Optional[str], typer.Option(metavar="BLEND", help="Train on blend BLEND's out-of-fold outputs mixed with the true labels (soft targets); add --pseudo BLEND for the test images too. A distilled OOF score is a little optimistic: see README.")] = None,
    distill_alpha: Annotated[Optional[float], typer.Option(help=f"The teacher's share of a distilled target: alpha x teacher + (1 - alpha) x label. (default: {DISTILL_ALPHA})")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Train the asked folds again from scratch; with changed settings, delete the whole experiment first.",
        ),
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Folds trained at once, in separate processes (CPU cores or GPUs shared out).")
    ] = 1,
    cluster: Annotated[
        Optional[str],
        typer.Option("--cluster", help="Send the folds to a Dask scheduler, e.g. tcp://HOST:8786 (workspace on a shared filesystem)."),
    ] = None,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            help="Torch threads for every fold, wherever it runs: the same count gives bit-identical logits under --jobs, "
            "--cluster or one after another. Default: all cores here, the cores shared out among workers.",
        ),
    ] = None,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Train one model per fold; cache OOF and test logits under models/NAME/.

    Run the same command again after a stop to resume: finished folds are kept, a running fold restarts from its last finished epoch.

    Example: ens train-folds --name r18 --model resnet18 --size 64 --epochs 5
    """
    from ensemble.cli.progress import TrainProgress
    from ensemble.training.experiment import train_experiment
    from ensemble.training.parallel import Executor

    if size is not None and sizes is not None:  # --size alone replaces a schedule from ens.toml; beside --sizes it would be dropped
        raise EnsError(f"--size {size} with --sizes {sizes}: give --size or --sizes, not both")
    ws = Workspace.load(workspace)
    flags = dict(
        model=model, size=size, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, device=device, seed=seed,
        sizes="" if size is not None and sizes is None else sizes,  # one --size replaces the schedule
        augment=augment, augment_fill=augment_fill, ema=ema, mixup=mixup, cutmix=cutmix, label_smoothing=label_smoothing,
        class_weights=class_weights, loss=loss, optimizer=optimizer, schedule=schedule, warmup=warmup, clip_grad=clip_grad,
        attention=attention, attention_in_blocks=attention_in_blocks,
        pretrained=pretrained if pretrained in (None, "", "timm") else str(Path(pretrained).resolve()),
        train_blocks=train_blocks, freeze_bn=freeze_bn, unfreeze_after=unfreeze_after, backbone_lr_scale=backbone_lr_scale,
        frozen_features=frozen_features, top_blocks=top_blocks, tta=tta, tta_merge=tta_merge,
    )
    settings = override(ws.train, **flags)
    given = ws.train_keys | {key for key, value in flags.items() if value is not None}
    executor = Executor(jobs, cluster, threads)
    teacher = teacher_options(pseudo, pseudo_threshold, pseudo_weight, distill, distill_alpha)
    to_run = parse_list(None if folds == "all" else folds, "--folds", int)
    with TrainProgress(err, print_event) as progress:
        if teacher:
            from ensemble.workflows.teach import train_student

            result = train_student(ws, name, settings, teacher, to_run, force, progress, executor, given)
        else:
            result = train_experiment(ws, name, settings, to_run, force, progress, executor, given)
    print_experiment(result, TRAIN)


def teacher_options(pseudo, threshold, weight, distill, alpha) -> TeacherOptions:
    """The --pseudo and --distill options; one refused without the blend it tunes."""
    if pseudo is None and (threshold is not None or weight is not None):
        raise EnsError(f"--pseudo-{'threshold' if threshold is not None else 'weight'} tunes --pseudo BLEND; give --pseudo too")
    if distill is None and alpha is not None:
        raise EnsError("--distill-alpha tunes --distill BLEND; give --distill too")
    given = {"pseudo_threshold": threshold, "pseudo_weight": weight, "distill_alpha": alpha}
    return TeacherOptions(pseudo=pseudo, distill=distill, **{key: value for key, value in given.items() if value is not None}).check()


def print_experiment(result: ExperimentResult, verb: Verb) -> None:
    """How train-folds and predict end: what was done or kept, and the OOF score."""
    if not result.trained:
        scores = " ".join(score_text(score) for score in result.fold_scores)
        err.print(
            f"nothing {verb.past}: the asked folds are already {verb.past} with these settings "
            f"(fold scores {scores}); --force {verb.verb}s them again"
        )
    elif result.kept:
        err.print(f"kept finished folds {result.kept}")
    oof = f"{result.oof_score:.4f}" if result.oof_score is not None else f"- (not every fold is {verb.past})"
    out.print(f"{result.name}: OOF {result.metric} {oof}; logits in {result.path}")


@app.command()
@handles_errors
def predict(
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Experiment whose fold checkpoints predict.")] = None,
    blend: Annotated[Optional[str], typer.Option("--blend", help="A blend (submissions/NAME.json) applied to --test-csv: every member's fold models, the recorded parameters.")] = None,
    bundle: Annotated[Optional[Path], typer.Option("--bundle", help="An exported bundle (ens export) applied to --test-csv; no workspace needed.", file_okay=False)] = None,
    tta: TtaOption = None,
    tta_merge: TtaMergeOption = None,
    as_name: Annotated[Optional[str], typer.Option("--as", help="New experiment: OOF and test logits again, under --tta.")] = None,
    test_csv: Annotated[Optional[Path], typer.Option("--test-csv", help="A new test set: CSV with the id column.", dir_okay=False)] = None,
    test_images: Annotated[Optional[Path], typer.Option("--test-images", help="Folder of the new test set's images.", file_okay=False)] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="CSV to write for the new test set; may be outside the workspace.", dir_okay=False)] = None,
    keep_views: Annotated[bool, typer.Option("--keep-views", help="With --as: also keep each view's logits, fold<k>/views.npz.")] = False,
    device: Annotated[Optional[str], typer.Option(help=f"auto, cpu, cuda or cuda:N. {default_help(TrainSettings, 'device')}")] = None,
    amp: Annotated[bool, typer.Option("--amp", help="With --blend or --bundle on CUDA: forward passes under autocast (bf16, else fp16): faster, "
                                      "but no longer the float32 numbers the blend was fitted on. No effect on the CPU.")] = False,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Predict with an experiment's saved fold models (--name), a blend's (--blend) or a bundle's (--bundle), without training. --tta and --tta-merge default to the experiment's own.

    Example: ens predict -n r18 --tta hflip,rot90 --as r18-tta; ens predict -n r18 --test-csv new.csv --test-images new/ --out new.csv;
    ens predict --blend first --test-csv new.csv --test-images new/ --out new.csv
    """
    from ensemble.inference.predict import predict_experiment
    from ensemble.inference.test_set import predict_test_set

    new_test = (test_csv, test_images, out_path)
    if sum(value is not None for value in (name, blend, bundle)) != 1:
        raise EnsError("give exactly one of --name, --blend and --bundle")
    if blend is not None or bundle is not None:
        return predict_with_blend(blend, bundle, new_test, (tta, tta_merge, as_name, keep_views), device, force, workspace, amp)
    if amp:
        raise EnsError("--amp applies to --blend and --bundle; ens predict --name predicts in float32, as training scored its OOF")
    if (as_name is None) == all(value is None for value in new_test):
        raise EnsError("give either --as NEW, or --test-csv, --test-images and --out")
    if as_name is None and None in new_test:
        raise EnsError("a new test set needs all three of --test-csv, --test-images and --out")
    ws = Workspace.load(workspace)
    if as_name is not None:
        result = predict_experiment(ws, name, as_name, tta, tta_merge, device, keep_views, force, print_predict_event)
        return print_experiment(result, PREDICT)
    if keep_views:
        raise EnsError("--keep-views keeps the views of an --as experiment; a new test set (--test-csv) has no views to keep")
    result = predict_test_set(ws, name, test_csv, test_images, out_path, tta, tta_merge, device, force, print_predict_event)
    out.print(f"wrote {result.path}: {result.rows} rows, {result.kind}, TTA {result.policy} ({result.merge})")


def predict_with_blend(
    blend: str | None, bundle: Path | None, new_test: tuple, refused: tuple, device: str | None, force: bool, workspace: Path, amp: bool = False
) -> None:
    """--blend NAME or --bundle DIR on a new test set: the blend's members' own TTA, nothing else to choose."""
    if any(value not in (None, False) for value in refused):
        raise EnsError("--blend and --bundle predict with each member's recorded TTA; --tta, --tta-merge, --as and --keep-views do not apply")
    if None in new_test:
        raise EnsError(f"{'--blend' if blend else '--bundle'} needs all three of --test-csv, --test-images and --out")
    if blend is not None:
        from ensemble.workflows.predict_blend import predict_blend

        result = predict_blend(Workspace.load(workspace), blend, *new_test, device, force, print_predict_event, amp)
    else:
        from ensemble.workflows.export.bundle import predict_bundle

        result = predict_bundle(bundle, *new_test, device, force, print_predict_event, amp)
    out.print(
        f"wrote {result.path}: {result.rows} rows, {result.kind}, blend of {', '.join(result.members)}; "
        f"{result.images_per_second:.1f} images/s ({result.seconds:.1f}s)"
    )


def print_predict_event(event: object) -> None:
    from ensemble.inference.fold_models import ChunkPredicted
    from ensemble.inference.predict import FoldPredicted

    if isinstance(event, ChunkPredicted):
        return err.print(f"predicted {event.done}/{event.total} images in {event.seconds:.1f}s")
    if not isinstance(event, FoldPredicted):
        return print_event(event)
    score = f"  {event.metric} {event.score:.4f}" if event.score is not None else ""
    err.print(f"fold {event.fold}: predicted with {event.n_views} view(s){score} in {event.seconds:.1f}s")
