"""The report's Data section, from `ens audit`'s files: its figures, the train/test shift, duplicate
groups as picture strips, test images with a near-copy in train, and conflicting labels."""

from __future__ import annotations

from ensemble.errors import EnsError
from ensemble.results.report import figures
from ensemble.results.report.collect import MAX_GROUPS, MAX_PAIRS, AuditSummary, Picture
from ensemble.results.report.markup import esc, img, table


def picture(item: Picture, caption: str) -> str:
    """One thumbnail with its caption (HTML already); an unreadable or unknown image is a grey square saying why."""
    try:
        if item.path is None:
            raise EnsError(f"{item.id}: not in the competition's CSV")
        drawn = img(figures.thumbnail(item.path), item.id)
    except EnsError as error:
        drawn = f'<div class="missing" title="{esc(error)}">?</div>'
    return f"<figure>{drawn}<figcaption>{caption}</figcaption></figure>"


def count(found: dict, key: str, of: str | None = None) -> str:
    value = found.get(key)
    if value is None:
        return "-"
    total = found.get(of) if of else None
    return f"{esc(value)} of {esc(total)}" if total is not None else esc(value)


def shift_line(shift) -> str:
    """The adversarial validation's AUC, when the audit computed one."""
    if not isinstance(shift, dict) or not isinstance(shift.get("auc"), (int, float)):
        return ""
    text = (f"<p>Shift between train and test: a classifier tells them apart with a cross-validated AUC of <b>{shift['auc']:.3f}</b> "
            '<span class="muted">(about 0.5: no shift; near 1: test images unlike the training ones)</span>')
    like = shift.get("most_test_like")
    if isinstance(like, list) and like:
        shown = [str(entry.get("id", entry)) if isinstance(entry, dict) else str(entry) for entry in like[:8]]
        text += f'<br><span class="muted">training images most like the test set: {esc(", ".join(shown))}</span>'
    return text + "</p>"


MAX_COLUMNS = 12  # classes or tags shown in the table of folds


def fold_balance_table(balance) -> str:
    """The target in each fold, as `ens audit` recorded it (audit/stats.py fold_balance): rows
    of each class or tag per fold, or a regression target's quantiles per fold."""
    if not isinstance(balance, dict):
        return ""
    if "error" in balance:
        return f'<h3>Target in each fold</h3><p class="note">{esc(balance["error"])}</p>'
    try:
        per_fold = balance.get("counts") or balance["quantiles"]
        columns = list(next(iter(per_fold.values())))[:MAX_COLUMNS]
        rows = [[esc(fold)] + [number(values.get(column)) for column in columns] for fold, values in per_fold.items()]
    except (KeyError, TypeError, AttributeError, StopIteration):
        return '<h3>Target in each fold</h3><p class="note">audit.json: fold_balance is not as ens audit writes it</p>'
    what = "rows of each class (images with each tag) per fold" if "counts" in balance else "the target's quantiles per fold"
    return f'<h3>Target in each fold</h3><p class="muted">{what}, for the folds of folds/folds.csv</p>' + table(
        ["fold"] + [str(column) for column in columns], rows, numeric=set(range(1, len(columns) + 1))
    )


def number(value) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return esc("-" if value is None else value)


def audit_section(audit: AuditSummary) -> str:
    found = audit.figures
    rows = [
        ["near-duplicate groups in train", count(found, "n_groups")],
        ["training images in those groups", count(found, "n_grouped", "n_train")],
        ["test images with a near-copy in train", count(found, "n_test_with_copy", "n_test")],
        ["groups with conflicting labels", count(found, "n_conflicts")],
        ["threshold (correlation)", count(found, "threshold")],
    ]
    embeddings = found.get("embeddings")
    if isinstance(embeddings, dict):  # which network's features also judged the pairs
        source = embeddings.get("experiment") or embeddings.get("weights") or "?"
        rows.append(["embeddings from", f"{esc(source)} ({esc(embeddings.get('model', '?'))})"])
        rows.append(["embedding threshold (relative distance)", esc(embeddings.get("threshold", "-"))])
    body = '<p class="muted">From <code>audit/</code>, written by <code>ens audit</code>.</p>'
    body += "".join(f'<p class="note">{esc(note)}</p>' for note in audit.notes)
    body += table(["", "audit"], rows, numeric={1})
    if found.get("method"):
        body += f'<p class="muted">Method: {esc(found["method"])}</p>'
    body += shift_line(found.get("shift"))
    body += fold_balance_table(found.get("fold_balance"))
    if audit.groups:
        more = f" (the first {MAX_GROUPS} of {audit.n_groups_listed})" if audit.n_groups_listed > len(audit.groups) else ""
        body += f"<h3>Near-duplicate groups{more}</h3>"
        for group, members in audit.groups:
            strip = "".join(picture(member, f"{esc(member.id)}<br>{esc(member.label)}") for member in members)
            body += f'<div class="muted">group {esc(group)}</div><div class="strip">{strip}</div>'
    if audit.pairs:
        more = f" (the first {MAX_PAIRS} of {audit.n_pairs_listed})" if audit.n_pairs_listed > len(audit.pairs) else ""
        body += f"<h3>Test images with a near-copy in train{more}</h3><div class=\"strip\">"
        for test, train, distance in audit.pairs:
            try:  # 1 - a correlation of identical images can round to -0.0000 in the CSV
                distance = f"{max(float(distance), 0.0):.4f}"
            except ValueError:
                pass
            body += (f'<div class="strip pair">{picture(test, f"test {esc(test.id)}")}'
                     f'{picture(train, f"train {esc(train.id)}<br>{esc(train.label)}<br>distance {esc(distance)}")}</div>')
        body += "</div>"
    if audit.conflicts:
        rows = [[esc(group), esc(", ".join(f"{image_id} ({label})" for image_id, label in members))] for group, members in audit.conflicts]
        body += "<h3>Groups with conflicting labels</h3>" + table(["group", "members (label)"], rows)
    return body
