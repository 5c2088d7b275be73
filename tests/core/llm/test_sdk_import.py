"""The ``dashscope`` SDK is imported on first call, not with the code location: importing it
costs ~0.8 s, which every sensor tick's code server and every run launch would pay."""

import subprocess
import sys


def test_loading_the_definitions_does_not_import_the_sdk() -> None:
    code = "import sys, zqyy_assets.definitions; print('dashscope' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
