"""``python -m retracesoftware_cpython ARGS``: same as ``retrace-python ARGS``."""

import sys

from ._launcher import main

sys.exit(main())
