"""Sample third-party plugins for Gradient Lab, found through the ``gradient_lab.plugins`` group."""
