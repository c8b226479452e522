"""``python -m landmarklib ...``: the ``landmarklib`` command (:mod:`landmarklib.cli`)."""

import sys

from landmarklib.cli import main

sys.exit(main())
