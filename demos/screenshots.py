"""Refresh the demo screenshots in docs/img/ by running the browser test (needs chromium and playwright).

    python demos/screenshots.py

Writes docs/img/demo-{clone,animate,talk,live,verify}.png.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    env = {**os.environ, "AVATAR_DEMO_SCREENSHOTS": str(ROOT / "docs" / "img"), "GRADIO_ANALYTICS_ENABLED": "False"}
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:warnings",
                              str(ROOT / "tests" / "demo" / "test_browser.py")], cwd=ROOT, env=env))
