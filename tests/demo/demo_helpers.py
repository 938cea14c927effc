"""Constants shared by the demo tests (imported as a top-level module, like tests/output/faces.py)."""

import socket

from avatar.config import AvatarConfig, FaceConfig, OutputConfig

# A small internal size and output keep a 20-frame animation well under a second.
FAST = AvatarConfig(face=FaceConfig(size=128), output=OutputConfig(max_size=256))
MAX_UPLOAD_MB = 2.0


CONSENT = {"subject": "Eileen Collins", "granted_by": "subject", "statement": "I agree to be animated for this test.",
           "scopes": ["video", "audio", "live"], "commercial": False, "expires": "", "confirmed": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
