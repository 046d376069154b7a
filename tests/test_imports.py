import subprocess
import sys


def test_blend_and_leaderboard_do_not_import_torch():
    code = (
        "import sys, ensemble.cli, ensemble.blend.run, ensemble.leaderboard, ensemble.tables;"
        "heavy = [m for m in ('torch', 'timm', 'sklearn', 'scipy', 'lightgbm') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
