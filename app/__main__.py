"""``python -m gradient_lab.app [open EXPERIMENT.toml]``: the same as the gradient-lab command."""

import sys

from gradient_lab.engine.cli.main import main

sys.exit(main(sys.argv[1:]))
