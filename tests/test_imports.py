import subprocess
import sys


def test_blend_and_leaderboard_do_not_import_torch():
    code = (
        "import sys, ensemble.cli, ensemble.blend.run, ensemble.leaderboard, ensemble.tables, ensemble.report, ensemble.report.collect, ensemble.report.page;"
        "heavy = [m for m in ('torch', 'timm', 'sklearn', 'scipy', 'lightgbm') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_does_not_import_torch(trained_copy):
    # Writing a whole report (figures included) stays clear of torch, timm and scikit-learn.
    code = (
        "import sys; from ensemble.config import Workspace; from ensemble.report import write_report;"
        f"write_report(Workspace.load({str(trained_copy)!r}));"
        "heavy = [m for m in ('torch', 'timm', 'sklearn') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
