"""The README.md inside a bundle: what is in it, how to install and run it offline, and the
speed measured when it was exported (every number in it is measured, or says how it is estimated)."""

from __future__ import annotations


def size_text(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


def estimate_line(n_images: int, result) -> str:
    seconds = result.load_seconds + n_images / result.images_per_second
    return f"| {n_images:,} | {seconds / 60:.1f} min |"


def readme_text(name: str, document: dict, rules: dict, members: list[dict], weights: dict, result, wheel_name: str, device: str) -> str:
    """result: export.ExportResult (its speed measured by the bundle on the competition's test images)."""
    member_lines = [
        f"- `{member['name']}`: {weights[member['weights']]['model']} at {weights[member['weights']]['size']} px, "
        f"{len(weights[member['weights']]['folds'])} fold models, TTA {member['tta']} ({member['tta_merge']})"
        + (f", view {member['view']}" if member["view"] else "")
        if member["weights"] is not None else f"- `{member['name']}`: weight 0 in the blend, so neither exported nor predicted"
        for member in members
    ]
    precision = "fp16 (--half)" if result.half else "float32"
    lines = [
        f"# ens bundle: blend `{name}`",
        "",
        f"A `{document['method']}` blend of {len(members)} member(s), scored {document['metric']} {document['oof_score']:.4f} out of fold,",
        "packed by `ens export` to predict a hidden test set offline. No workspace and no network are needed.",
        "",
        "## What is in it",
        "",
        *member_lines,
        "",
        f"- `weights/EXPERIMENT/foldK.safetensors`: each fold model's weights, {precision}, {size_text(result.weights_bytes)} in all;",
        "- `bundle.json`: the blend's fitted parameters, what rebuilding each network needs (model, classes, size, options,",
        "  TTA policy, a regression's target scaling), and the competition's reading rules (id column, image suffix,",
        "  submission kind and columns, classes, task kind);",
        f"- `{wheel_name}`: ens itself; `requirements.txt`: the library versions the models were trained with;",
        "- `manifest.json`: the sha256 of every file; the bundle refuses to predict when one differs.",
        "",
        "## Run it",
        "",
        "Where torch, timm, safetensors and the usual scientific stack are installed (as on Kaggle's images):",
        "",
        "```bash",
        f"pip install --no-index --no-deps BUNDLE/{wheel_name}",
        "python -m ensemble predict --bundle BUNDLE --test-csv test.csv --test-images test/ --out submission.csv",
        "```",
        "",
        f"The test CSV needs the id column `{rules['id_column']}`; each image is `TEST_IMAGES/<id>{rules['image_suffix']}`.",
        "The submission has the sample submission's columns, one row per id in the test CSV's order.",
        "",
        "## Speed",
        "",
        f"Measured at export on this machine ({device}): {result.n_test} test images in {result.predict_seconds:.1f} s, "
        f"{result.images_per_second:.1f} images/s (decoding, every fold model, TTA and the blend), after {result.load_seconds:.1f} s loading the models.",
        "Estimated for N images on the same machine (loading + N / that rate):"
        + (f" measured on only {result.n_test} images, where each model's first passes (kernel set-up) weigh, so an upper bound." if result.n_test < 1000 else ""),
        "",
        "| images | time |",
        "|---|---|",
        *(estimate_line(n_images, result) for n_images in (1_000, 10_000, 100_000)),
        "",
    ]
    return "\n".join(lines)
