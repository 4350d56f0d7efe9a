"""A drop-in that fails while it is imported: the loader must record it and carry on."""

raise RuntimeError("this drop-in fails on purpose while importing")
