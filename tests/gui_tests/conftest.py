"""GUI tests run without a display: Qt's offscreen platform, chosen before anything imports Qt."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
