"""``python -m gradient_lab.engine.cli``: the ``gradient-lab`` command."""

import sys

from gradient_lab.engine.cli.main import main

sys.exit(main())
