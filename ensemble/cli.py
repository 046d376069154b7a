"""The `ens` command line: parses options, calls the library, renders results.

Results go to standard output; progress and errors to standard error, so
`ens leaderboard --format json | jq` stays clean. Every EnsError becomes one line
`error: ...` and exit code 1. Torch is only imported by the commands that train.
"""

from __future__ import annotations

import errno
import functools
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.text import Text

from ensemble import __version__
from ensemble.attention import ATTENTION
from ensemble.blend import METHODS
from ensemble.config import PRETRAINED_BACKBONE_LR_SCALE, PRETRAINED_WARMUP_EPOCHS, FoldSettings, TrainSettings, Workspace, override
from ensemble.errors import EnsError
from ensemble.folds import STRATEGIES
from ensemble.metrics import METRICS
from ensemble.tables import score_text
from ensemble.augment import TRANSFORMS
from ensemble.recipe import CLASS_WEIGHTS
from ensemble.stages import OPTIMIZERS, SCHEDULES
from ensemble.tta import MERGES, VIEWS

app = typer.Typer(
    name="ens",
    help=(
        "Kaggle-style image classification, from raw files to a blended submission.\n\n"
        "ens folds -> ens train-folds -> ens blend. Start with `ens demo` to see it run.\n\n"
        "Example: ens folds --k 5 && ens train-folds -n r18 --model resnet18 && ens blend -n first"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No markup and no highlighting: messages carry paths, ids and TOML section names such as
# "[competition]", which rich would otherwise read as style tags and drop.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)

WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="Workspace folder holding ens.toml.", file_okay=False),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace existing outputs.")]
TtaOption = Annotated[
    Optional[str],
    typer.Option("--tta", help=f"Test-time views, a comma list of: {', '.join(VIEWS.names())} (scale:F, shift:F); the identity is always in."),
]
TtaMergeOption = Annotated[Optional[str], typer.Option("--tta-merge", help=f"How views merge: {', '.join(MERGES.names())} of probabilities.")]


def default(cls, field: str) -> str:
    """Help text for a flag whose default lives in a settings dataclass (or ens.toml)."""
    return f"(default: ens.toml, else {getattr(cls(), field)!r})"


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def handles_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EnsError as error:
            err.print(Text("error:", style="red"), str(error))
            raise typer.Exit(1) from None
        except OSError as error:
            # Writes through the store name their file already; this catches the others
            # (a folder made, an image of the demo written) when the disk fills up.
            if error.errno not in WRITE_ERRORS:
                raise
            where = f"{error.filename}: " if error.filename else ""
            err.print(Text("error:", style="red"), f"{where}cannot write: {error.strerror}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted; run the same command again to resume")
            raise typer.Exit(130) from None

    return run


def parse_list(value: str | None, option: str, convert=str) -> list | None:
    if value is None or value.strip() == "":
        return None
    try:
        values = [convert(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise EnsError(f"{option}: cannot read {value!r}; expected a comma-separated list")
    return values


def version_callback(value: bool) -> None:
    if value:
        out.print(f"ens {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    pass


@app.command()
@handles_errors
def init(
    directory: Annotated[Path, typer.Argument(help="The competition folder, as downloaded and unzipped.")] = Path("."),
    train_csv: Annotated[Optional[str], typer.Option(help="The CSV of training ids and labels.")] = None,
    test_csv: Annotated[Optional[str], typer.Option(help="The CSV of test ids (default: the sample's ids).")] = None,
    sample_submission: Annotated[Optional[str], typer.Option(help="The sample submission CSV.")] = None,
    train_images: Annotated[Optional[str], typer.Option(help="The folder of training images, or of one folder per class.")] = None,
    test_images: Annotated[Optional[str], typer.Option(help="The folder of test images.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="The id column.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="The label column of the train CSV.")] = None,
    image_suffix: Annotated[Optional[str], typer.Option(help="Image file = <folder>/<id><suffix>, e.g. .jpg.")] = None,
    group_column: Annotated[Optional[str], typer.Option(help="A column of the train CSV for --strategy group.")] = None,
    metric: Annotated[Optional[str], typer.Option(help="accuracy, logloss... (default: a guess from the submission kind)")] = None,
    submission: Annotated[Optional[str], typer.Option(help="Submission kind (default: auto, read off the sample).")] = None,
    positive_class: Annotated[Optional[str], typer.Option(help="The class a single probability column is about.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing ens.toml (and lists/).")] = False,
    workspace: Annotated[
        Optional[Path], typer.Option("--workspace", "-w", help="Where to write ens.toml (default: DIRECTORY).", file_okay=False)
    ] = None,
) -> None:
    """Write a commented ens.toml inferred from a competition folder; flags settle what it cannot.

    Finds the train/test CSVs, the sample submission, the image folders and suffix, the id and label columns; or, with one folder per class (train/cat/001.jpg) beside a test folder, writes lists/train.csv, test.csv and sample_submission.csv. Prints each choice and how sure it is.

    Example: ens init ./dogs-vs-cats && ens folds -w ./dogs-vs-cats
    """
    from ensemble.init import Given, init_workspace

    given = Given(
        train_csv=train_csv, test_csv=test_csv, sample_submission=sample_submission, train_images=train_images,
        test_images=test_images, id_column=id_column, label_column=label_column, image_suffix=image_suffix,
        group_column=group_column, metric=metric, submission=submission, positive_class=positive_class,
    )
    print_init(init_workspace(directory, given, workspace, force))


def print_init(result) -> None:
    width = max(len(str(finding.value)) for finding in result.findings) + 2
    for finding in result.findings:
        value = repr(finding.value) if isinstance(finding.value, str) else str(finding.value)
        out.print(f"{finding.key:<18} {value:<{width}} {'sure' if finding.sure else 'guess':<5}  {finding.why}")
    out.print(
        f"{result.layout} layout: {result.n_train} train and {result.n_test} test images, "
        f"{len(result.classes)} classes ({', '.join(result.classes[:8])}{', ...' if len(result.classes) > 8 else ''}), "
        f"{result.submission_kind} submission"
    )
    for note in result.notes:
        err.print(f"note: {note}")
    out.print(f"wrote {', '.join(str(path) for path in result.written)}")
    out.print(f"next: ens folds -w {result.config_path.parent} && ens train-folds -w {result.config_path.parent} -n first")


@app.command()
@handles_errors
def folds(
    k: Annotated[Optional[int], typer.Option("--k", help=f"Number of folds. {default(FoldSettings, 'k')}")] = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(help=f"One of: {', '.join(STRATEGIES.names())}. {default(FoldSettings, 'strategy')}"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Shuffle seed. {default(FoldSettings, 'seed')}")] = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Split train.csv into k folds; writes folds/folds.csv (id, fold) and folds/folds.json.

    Example: ens folds --k 5 --strategy stratified
    """
    from ensemble.competition import load_competition
    from ensemble.folds import write_folds

    ws = Workspace.load(workspace)
    settings = override(ws.folds, k=k, strategy=strategy, seed=seed)
    result = write_folds(ws, load_competition(ws), settings, force)
    out.print(f"wrote {result.path} ({settings.strategy}, k={settings.k}): fold sizes {result.fold_sizes}")
    label, count = result.smallest_class
    if count < settings.k:
        err.print(f"note: class {label!r} has {count} rows, fewer than {settings.k} folds; some folds lack it")


def print_event(event: object) -> None:
    from ensemble.runs import FoldEnd, FoldsSent, FoldStart, ImagesRead, WeightsChecked
    from ensemble.train import EpochEnd

    formats = {
        ImagesRead: lambda e: (
            f"read {e.n_train} train and {e.n_test} test images at {e.size}px in {e.seconds:.1f}s"
            + (" (from the image cache)" if e.from_cache else "")
        ),
        WeightsChecked: lambda e: f"pretrained: {e.summary}",
        FoldsSent: lambda e: f"training folds {','.join(map(str, e.folds))} on {e.where}",
        FoldStart: lambda e: f"fold {e.fold}: training on {e.n_train}, holding out {e.n_valid}" + (" (resuming)" if e.resuming else ""),
        EpochEnd: lambda e: (
            f"  fold {e.fold} epoch {e.epoch}/{e.epochs}" + (f" stage {e.stage}/{e.stages} {e.size}px" if e.stages > 1 else "")
            + f"  train loss {e.train_loss:.4f}  "
            f"valid loss {e.valid_loss:.4f}  {e.metric} {e.valid_score:.4f}  {e.seconds:.1f}s"
        ),
        FoldEnd: lambda e: f"fold {e.fold}: {e.metric} {e.score:.4f} in {e.seconds:.1f}s",
    }
    if type(event) in formats:  # step events: only the live view (ensemble/view.py) shows them
        err.print(formats[type(event)](event))


@app.command("train-folds")
@handles_errors
def train_folds(
    name: Annotated[str, typer.Option("--name", "-n", help="Experiment name: the folder models/NAME.")],
    model: Annotated[Optional[str], typer.Option(help=f"timm model name, e.g. resnet18. {default(TrainSettings, 'model')}")] = None,
    size: Annotated[Optional[int], typer.Option(help=f"Image side in pixels: one stage at this size, replacing any --sizes schedule. {default(TrainSettings, 'size')}")] = None,
    sizes: Annotated[Optional[str], typer.Option(help="Progressive resizing: growing stage sizes, e.g. 24,32; the last is the inference size. (default: ens.toml, else one stage at --size)")] = None,
    epochs: Annotated[Optional[str], typer.Option(help=f"Passes over the fold's training rows: one count for every stage, or one per --sizes stage, e.g. 2,3. {default(TrainSettings, 'epochs')}")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=f"Images per step, at least 2. {default(TrainSettings, 'batch_size')}")] = None,
    lr: Annotated[Optional[float], typer.Option(help=f"Peak learning rate of the --schedule. {default(TrainSettings, 'lr')}")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=f"AdamW weight decay. {default(TrainSettings, 'weight_decay')}")] = None,
    folds: Annotated[Optional[str], typer.Option("--folds", help="Folds to train, e.g. 0,1 (default: all)")] = None,
    device: Annotated[Optional[str], typer.Option(help=f"auto, cpu, cuda or cuda:N. {default(TrainSettings, 'device')}")] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Seeds weights, shuffling and dropout. {default(TrainSettings, 'seed')}")] = None,
    attention: Annotated[Optional[str], typer.Option(help=f"Attention block: {', '.join(ATTENTION.names())}; on the final feature map. {default(TrainSettings, 'attention')}")] = None,
    attention_in_blocks: Annotated[Optional[bool], typer.Option("--attention-in-blocks/--attention-on-features", help="Put the --attention block inside every residual block (ResNet family) instead of on the final feature map.")] = None,
    pretrained: Annotated[Optional[str], typer.Option(metavar="FILE|timm", help="Backbone weights: a .safetensors or torch state-dict file, or 'timm' for timm's pretrained tag (online).")] = None,
    train_blocks: Annotated[Optional[int], typer.Option(help=f"Train only the last N backbone stages (0: linear probe; -1: all). {default(TrainSettings, 'train_blocks')}")] = None,
    freeze_bn: Annotated[Optional[bool], typer.Option("--freeze-bn/--no-freeze-bn", help="Keep every backbone BatchNorm's statistics and weights fixed. (default: ens.toml, else auto: off)")] = None,
    unfreeze_after: Annotated[Optional[int], typer.Option(help=f"Train only the new head (and attention) for E epochs, then the backbone. (default: ens.toml, else auto: {PRETRAINED_WARMUP_EPOCHS} with --pretrained, 0 without)")] = None,
    backbone_lr_scale: Annotated[Optional[float], typer.Option(help=f"Backbone lr = lr x this; the head keeps lr. (default: ens.toml, else auto: {PRETRAINED_BACKBONE_LR_SCALE} with --pretrained, 1.0 without)")] = None,
    augment: Annotated[Optional[str], typer.Option(help=f"Train-time transforms, a comma list of {', '.join(TRANSFORMS.names())} (e.g. hflip,shift:0.1,scale:0.7-1,erase:0.25), or none. {default(TrainSettings, 'augment')}")] = None,
    ema: Annotated[Optional[float], typer.Option(help=f"Decay of the weights' moving average, e.g. 0.99; its weights are the ones scored and saved; 0 = off. {default(TrainSettings, 'ema')}")] = None,
    mixup: Annotated[Optional[float], typer.Option(help=f"Mixup Beta(A, A), e.g. 0.2; 0 = off. {default(TrainSettings, 'mixup')}")] = None,
    cutmix: Annotated[Optional[float], typer.Option(help=f"CutMix Beta(A, A), e.g. 1.0; 0 = off. {default(TrainSettings, 'cutmix')}")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help=f"Label smoothing, e.g. 0.1. {default(TrainSettings, 'label_smoothing')}")] = None,
    class_weights: Annotated[Optional[str], typer.Option(help=f"One of: {', '.join(CLASS_WEIGHTS.names())}. {default(TrainSettings, 'class_weights')}")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help=f"One of: {', '.join(OPTIMIZERS.names())}. {default(TrainSettings, 'optimizer')}")] = None,
    schedule: Annotated[Optional[str], typer.Option(help=f"Learning-rate schedule over all steps, one of: {', '.join(SCHEDULES.names())}. {default(TrainSettings, 'schedule')}")] = None,
    warmup: Annotated[Optional[float], typer.Option(help=f"Fraction of the steps warming the learning rate up. {default(TrainSettings, 'warmup')}")] = None,
    clip_grad: Annotated[Optional[float], typer.Option(help=f"Clip the gradient norm to N; 0 = off. {default(TrainSettings, 'clip_grad')}")] = None,
    tta: TtaOption = None,
    tta_merge: TtaMergeOption = None,
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
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Train one model per fold; cache OOF and test logits under models/NAME/.

    Run the same command again after a stop to resume: finished folds are kept, a running fold restarts from its last finished epoch.

    Example: ens train-folds --name r18 --model resnet18 --size 64 --epochs 5
    """
    from ensemble.parallel import Executor
    from ensemble.runs import train_experiment
    from ensemble.view import TrainView

    ws = Workspace.load(workspace)
    settings = override(
        ws.train, model=model, size=size, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, device=device, seed=seed,
        sizes="" if size is not None and sizes is None else sizes,  # one --size replaces the schedule
        augment=augment, ema=ema, mixup=mixup, cutmix=cutmix, label_smoothing=label_smoothing,
        class_weights=class_weights, optimizer=optimizer, schedule=schedule, warmup=warmup, clip_grad=clip_grad,
        attention=attention, attention_in_blocks=attention_in_blocks,
        pretrained=pretrained if pretrained in (None, "", "timm") else str(Path(pretrained).resolve()),
        train_blocks=train_blocks, freeze_bn=freeze_bn, unfreeze_after=unfreeze_after, backbone_lr_scale=backbone_lr_scale,
        tta=tta, tta_merge=tta_merge,
    )
    executor = Executor(jobs, cluster)
    with TrainView(err, print_event) as view:
        result = train_experiment(ws, name, settings, parse_list(None if folds == "all" else folds, "--folds", int), force, view, executor)
    if not result.trained:
        scores = " ".join(score_text(score) for score in result.fold_scores)
        err.print(f"nothing trained: the asked folds are already trained with these settings (fold scores {scores}); --force trains them again")
    elif result.kept:
        err.print(f"kept finished folds {result.kept}")
    oof = f"{result.oof_score:.4f}" if result.oof_score is not None else "- (not every fold is trained)"
    out.print(f"{result.name}: OOF {result.metric} {oof}; logits in {result.path}")


@app.command()
@handles_errors
def predict(
    name: Annotated[str, typer.Option("--name", "-n", help="Experiment whose fold checkpoints predict.")],
    tta: TtaOption = None,
    tta_merge: TtaMergeOption = None,
    as_name: Annotated[Optional[str], typer.Option("--as", help="New experiment: OOF and test logits again, under --tta.")] = None,
    test_csv: Annotated[Optional[Path], typer.Option("--test-csv", help="A new test set: CSV with the id column.", dir_okay=False)] = None,
    test_images: Annotated[Optional[Path], typer.Option("--test-images", help="Folder of the new test set's images.", file_okay=False)] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="CSV to write for the new test set; may be outside the workspace.", dir_okay=False)] = None,
    keep_views: Annotated[bool, typer.Option("--keep-views", help="With --as: also keep each view's logits, fold<k>/views.npz.")] = False,
    device: Annotated[Optional[str], typer.Option(help=f"auto, cpu, cuda or cuda:N. {default(TrainSettings, 'device')}")] = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Predict with an experiment's saved fold models, without training. --tta and --tta-merge default to the experiment's own.

    Example: ens predict -n r18 --tta hflip,rot90 --as r18-tta; ens predict -n r18 --test-csv new.csv --test-images new/ --out new.csv
    """
    from ensemble.predict import predict_experiment, predict_test_set

    new_test = (test_csv, test_images, out_path)
    if (as_name is None) == all(value is None for value in new_test):
        raise EnsError("give either --as NEW, or --test-csv, --test-images and --out")
    if as_name is None and None in new_test:
        raise EnsError("a new test set needs all three of --test-csv, --test-images and --out")
    ws = Workspace.load(workspace)
    if as_name is not None:
        result = predict_experiment(ws, name, as_name, tta, tta_merge, device, keep_views, force, print_predict_event)
        if not result.trained:
            err.print("nothing predicted: every fold is already predicted with these settings; --force predicts them again")
        elif result.kept:
            err.print(f"kept finished folds {result.kept}")
        out.print(f"{result.name}: OOF {result.metric} {score_text(result.oof_score)}; logits in {result.path}")
        return
    result = predict_test_set(ws, name, test_csv, test_images, out_path, tta, tta_merge, device, force, print_predict_event)
    out.print(f"wrote {result.path}: {result.rows} rows, {result.kind}, TTA {result.policy} ({result.merge})")


def print_predict_event(event: object) -> None:
    from ensemble.predict import FoldPredicted

    if not isinstance(event, FoldPredicted):
        return print_event(event)
    score = f"  {event.metric} {event.score:.4f}" if event.score is not None else ""
    err.print(f"fold {event.fold}: predicted with {event.n_views} view(s){score} in {event.seconds:.1f}s")


class Format(str, Enum):
    table = "table"
    json = "json"


@app.command()
@handles_errors
def leaderboard(
    format: Annotated[Format, typer.Option("--format", help="table, or json for scripts.")] = Format.table,
    metric: Annotated[Optional[str], typer.Option(help="Score with this metric instead of ens.toml's: " + ", ".join(METRICS.names()) + ".")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Add per-fold scores, epochs, lr, batch size and training time.")] = False,
    correlation: Annotated[bool, typer.Option("--correlation", help="Also show the pairwise correlation of experiments' OOF predictions.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """List experiments, best OOF score first, with their per-fold scores.

    Example: ens leaderboard --format json
    """
    from ensemble.leaderboard import leaderboard as rows_of

    rows = rows_of(Workspace.load(workspace), metric, correlation)
    if format is Format.json:
        print(json.dumps(rows, indent=2))
        return
    print_leaderboard(rows, wide, correlation)


def print_leaderboard(rows: list[dict], wide: bool = False, correlation: bool = False) -> None:
    from ensemble.tables import correlation_table, leaderboard_table

    if not rows:
        out.print("no experiments yet; run `ens train-folds`")
        return
    out.print(leaderboard_table(rows, out.width, wide))
    if correlation and any("correlation" in row for row in rows):
        out.print(correlation_table(rows, out.width))
    for row in rows:
        if row["note"]:
            err.print(f"note: {row['name']}: {row['note']}")


@app.command()
@handles_errors
def blend(
    name: Annotated[str, typer.Option("--name", "-n", help="Submission name: submissions/NAME.csv, NAME.json and NAME.oof.npz.")],
    method: Annotated[str, typer.Option(help=f"One of: {', '.join(METHODS.names())}.")] = "mean",
    experiments: Annotated[
        Optional[str], typer.Option(help="Experiments to blend, e.g. a,b (default: all with every fold trained)")
    ] = None,
    metric: Annotated[Optional[str], typer.Option(help="Score and fit with this metric instead of ens.toml's: " + ", ".join(METRICS.names()) + ".")] = None,
    power: Annotated[Optional[float], typer.Option(help="power: the exponent of the probabilities (default 2).")] = None,
    meta: Annotated[Optional[str], typer.Option(help="stack: the meta-learner, logreg (default) or lgbm.")] = None,
    stack_test: Annotated[Optional[str], typer.Option(help="stack: per-fold (default: the meta-learner on each fold model's test logits, averaged) or mean-logits.")] = None,
    hill_steps: Annotated[Optional[int], typer.Option(help="hill: selection steps (default 50).")] = None,
    hill_init: Annotated[Optional[int], typer.Option(help="hill: start from the best N members (default 1).")] = None,
    hill_bags: Annotated[Optional[int], typer.Option(help="hill: bags of half the members, weights averaged (default 1: no bagging).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="hill: seeds the bags (default 0).")] = None,
    tune_thresholds: Annotated[bool, typer.Option("--tune-thresholds", help="For f1_macro and qwk: tune per-class biases on OOF (scored out of fold).")] = False,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Blend cached experiments, score the blend on OOF (in sample and out of fold), write a submission shaped like the sample.

    Example: ens blend --name first --method hill --experiments r18,effnet
    """
    from ensemble.blend.run import blend_experiments

    given = dict(power=power, meta=meta, stack_test=stack_test, hill_steps=hill_steps, hill_init=hill_init, hill_bags=hill_bags, seed=seed)
    options = {option: value for option, value in given.items() if value is not None}
    result = blend_experiments(
        Workspace.load(workspace), name, method, parse_list(experiments, "--experiments"), force, metric, options, tune_thresholds
    )
    print_blend(result)


def print_blend(result) -> None:
    from ensemble.tables import blend_table

    for member, reason in result.left_out.items():
        err.print(f"note: left out {member}: {reason}")
    out.print(blend_table(result, out.width))
    if result.optimised:
        out.print(f"note: {result.method} is fit by minimising {result.optimised}: {result.metric} is flat almost everywhere (hill optimises it directly)")
    out.print(
        f"{result.metric}: in sample {score_text(result.oof_score_in_sample)}, out of fold {score_text(result.oof_score)}"
    )
    out.print(f"wrote {result.csv_path}, {result.json_path.name} and {result.oof_path.name} (submission kind: {result.kind})")


@app.command()
@handles_errors
def cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete every cached image file.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """List the decoded-image cache (cache/ in the workspace), or delete it with --clear.

    Images are decoded once per (image list, size) into cache/; later runs read that file.

    Example: ens cache --clear
    """
    from ensemble.cache import clear_cache, list_cache

    root = Workspace.load(workspace).root
    if clear:
        files, freed = clear_cache(root)
        out.print(f"removed {files} cached image files ({freed / 1e6:.1f} MB)")
        return
    entries = list_cache(root)
    if not entries:
        out.print("the image cache is empty")
        return
    for entry in entries:  # plain lines: a table would squeeze the paths at 80 columns
        out.print(f"{entry.path.name}  {entry.n_images} images at {entry.size}px  {entry.bytes / 1e6:.1f} MB  {entry.created}  from {entry.source}")
    out.print(f"total {sum(entry.bytes for entry in entries) / 1e6:.1f} MB in {entries[0].path.parent}")


@app.command()
@handles_errors
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to write the demo workspace.")] = Path("ens-demo"),
    force: ForceOption = False,
) -> None:
    """Make a small real competition from scikit-learn's digits and run it end to end.

    Writes the competition (PNG files, train.csv, test.csv, sample submission, ens.toml) into
    DIRECTORY, then runs folds, two experiments, a mean blend and the submission.

    Example: ens demo ./ens-demo
    """
    from ensemble.demo import run_demo
    from ensemble.leaderboard import leaderboard as rows_of

    from ensemble.view import TrainView

    try:
        with TrainView(err, print_event) as view:
            result = run_demo(directory, force, view)
    except KeyboardInterrupt:  # the same command with --force would start over, not resume
        err.print(f"interrupted; run `ens demo {directory}` again to resume")
        raise typer.Exit(130) from None
    print_leaderboard(rows_of(result.workspace))
    print_blend(result.blend)
    out.print(
        f"held-out test accuracy of the submission: {result.test_accuracy:.4f} "
        f"on {result.test_rows} images (answers in data/test_labels.csv)",
    )
    out.print(f"demo finished in {result.seconds:.0f}s; workspace {result.workspace.root}")


@app.command()
@handles_errors
def report(
    out_path: Annotated[Optional[Path], typer.Option("--out", help="The HTML file to write (default: report.html in the workspace).", dir_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a file at --out that is not an earlier report.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Write one self-contained HTML page of the results: curves, fold scores, confusion matrices, correlations, blends, calibration, settings.

    Reads cached files only; an earlier report is replaced.

    Example: ens report --out results.html
    """
    from ensemble.report import write_report

    result = write_report(Workspace.load(workspace), out_path, force)
    best = f"; best experiment {result.best}" if result.best else ""
    out.print(f"wrote {result.path} ({result.n_experiments} experiments, {result.n_blends} blends{best})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
