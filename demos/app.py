"""Launch the avatar Gradio demo: ``python demos/app.py [--port N] ...`` (same flags as ``avatar demo``).

The app itself lives in the package (``avatar/demo/``) so that it ships with ``pip install``;
this script is a thin launcher that also works from a source checkout without installing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
