"""Shipped data: the default experiment and the digits set."""

if __name__ != "gradient_lab.assets":
    raise ImportError(
        f"this folder is the package gradient_lab.assets, imported here as {__name__!r}: "
        "install Gradient Lab and write `import gradient_lab.assets`",
        name=__name__,
    )
