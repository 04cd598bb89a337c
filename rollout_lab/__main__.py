"""``python -m rollout_lab``: the same command line as ``rollout-lab``."""

import sys

from rollout_lab.cli import main

sys.exit(main())
