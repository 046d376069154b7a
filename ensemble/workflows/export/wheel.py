"""ens itself as a wheel, written from the running package's own files: no build backend, no
network (pip's build isolation would fetch setuptools), so `ens export` works offline.

A wheel is a zip of the package's files and a NAME-VERSION.dist-info folder: METADATA,
WHEEL, entry_points.txt (the `ens` script) and RECORD (each file's sha256, urlsafe base64
without padding, and size), as the wheel spec (PEP 427, PEP 376's RECORD) describes. It is
pure Python (py3-none-any): torch, timm and the rest are the machine's, as on Kaggle's images.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import zipfile
from pathlib import Path

import ensemble

DIST = "ens"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries dated alike: the same files make the same wheel


def package_files(package_root: Path) -> list[Path]:
    """Every file of the package but compiled caches, sorted."""
    return sorted(path for path in package_root.rglob("*") if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")


def requirements() -> list[str]:
    """What the installed distribution requires (its extras' too, marked), none when ens runs from a bare source tree."""
    try:
        return importlib.metadata.distribution(DIST).requires or []
    except importlib.metadata.PackageNotFoundError:
        return []


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel_name(version: str) -> str:
    return f"{DIST}-{version}-py3-none-any.whl"


def wheel_bytes(package_root: Path | None = None, version: str | None = None) -> tuple[str, bytes]:
    """(the wheel's file name, its bytes) for the package at package_root (default: the running one)."""
    package_root = package_root or Path(ensemble.__file__).parent
    version = version or ensemble.__version__
    dist_info = f"{DIST}-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (f"{package_root.name}/{path.relative_to(package_root).as_posix()}", path.read_bytes()) for path in package_files(package_root)
    ]
    metadata = ["Metadata-Version: 2.1", f"Name: {DIST}", f"Version: {version}", "Requires-Python: >=3.10"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requirements()]
    entries.append((f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()))
    entries.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: ens export\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    entries.append((f"{dist_info}/entry_points.txt", b"[console_scripts]\nens = ensemble.cli:main\n"))
    entries.append((f"{dist_info}/top_level.txt", f"{package_root.name}\n".encode()))
    record = [record_line(name, data) for name, data in entries] + [f"{dist_info}/RECORD,,"]
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return wheel_name(version), buffer.getvalue()
