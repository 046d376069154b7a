import pkgutil
import subprocess
import sys

import ensemble

# The torch-free part of the house (pyproject.toml's import-linter contracts say the same for
# every import, lazy ones too): every module in these packages, and the CLI that `ens blend`,
# `ens leaderboard` and `ens report` start through.
TORCH_FREE = ["ensemble.errors", "ensemble.registry", "ensemble.config", "ensemble.metrics", "ensemble.io", "ensemble.stages"]
TORCH_FREE_PACKAGES = ["ensemble.data", "ensemble.artifacts", "ensemble.blend", "ensemble.results", "ensemble.init"]


def torch_free_modules() -> list[str]:
    modules = list(TORCH_FREE)
    for package in TORCH_FREE_PACKAGES:
        path = [str(p) for p in __import__(package, fromlist=["_"]).__path__]
        modules += [package] + [info.name for info in pkgutil.walk_packages(path, package + ".")]
    return modules


def test_the_torch_free_part_is_every_module_of_its_packages():
    modules = torch_free_modules()
    assert "ensemble.artifacts.writer" in modules and "ensemble.results.report.page" in modules
    assert len(modules) > 35


def test_blend_leaderboard_and_the_torch_free_packages_do_not_import_torch():
    modules = ["ensemble.cli", *torch_free_modules()]
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}];"
        "heavy = [m for m in ('torch', 'timm', 'sklearn', 'scipy', 'lightgbm') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_does_not_import_torch(trained_copy):
    # Writing a whole report (figures included) stays clear of torch, timm and scikit-learn.
    code = (
        "import sys; from ensemble.config import Workspace; from ensemble.results.report import write_report;"
        f"write_report(Workspace.load({str(trained_copy)!r}));"
        "heavy = [m for m in ('torch', 'timm', 'sklearn') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_imports():
    for info in pkgutil.walk_packages(ensemble.__path__, "ensemble."):
        if info.name != "ensemble.__main__":
            __import__(info.name)
