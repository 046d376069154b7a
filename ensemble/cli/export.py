"""`ens export`: a blend as a self-contained bundle for an offline machine (workflows/export/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.cli.app import ForceOption, WorkspaceOption, app, err, handles_errors, out
from ensemble.config import Workspace


@app.command()
@handles_errors
def export(
    name: Annotated[str, typer.Argument(help="The blend to export: submissions/NAME.json.")],
    out_dir: Annotated[Path, typer.Option("--out", help="The bundle folder to write.", file_okay=False)],
    half: Annotated[bool, typer.Option("--half", help="Weights in fp16: half the size; refused if a test label changes, unless --force.")] = False,
    make_zip: Annotated[bool, typer.Option("--zip", help="Also write the bundle as OUT.zip (a Kaggle dataset upload).")] = False,
    device: Annotated[Optional[str], typer.Option(help="Where the bundle's check run predicts the test images: auto, cpu, cuda or cuda:N. (default: ens.toml [train] device)")] = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Write a blend's fold models (safetensors), its fitted parameters, the competition's reading rules and ens itself (a wheel) into one folder.

    The bundle predicts the competition's test images once before it is kept (its README states the speed measured). Offline:
    pip install --no-index --no-deps OUT/*.whl && python -m ensemble predict --bundle OUT --test-csv test.csv --test-images test/ --out submission.csv

    Example: ens export first --out bundle --half --zip
    """
    from ensemble.cli.training import print_predict_event
    from ensemble.workflows.export.export import export_blend

    result = export_blend(Workspace.load(workspace), name, out_dir, half, make_zip, force, device, print_predict_event)
    if result.half:
        saved = result.float32_bytes - result.weights_bytes
        err.print(f"--half: weights {result.weights_bytes / 2**20:.1f} MB instead of {result.float32_bytes / 2**20:.1f} MB ({saved / 2**20:.1f} MB saved)")
    what = "labels changed" if result.changed else "no label changed"
    out.print(
        f"wrote {result.path}: blend of {', '.join(result.members)}; on the {result.n_test} test images the bundle's outputs differ from the blend's "
        f"by at most {result.max_difference:.2g} ({what}), {result.images_per_second:.1f} images/s"
        + (f"; {result.zip_path}" if result.zip_path else "")
    )
