"""The built-in plugins, registered through the entry-point group as a third party's are."""

if __name__ != "gradient_lab.plugins":
    raise ImportError(
        f"this folder is the package gradient_lab.plugins, imported here as {__name__!r}: "
        "install Gradient Lab and write `import gradient_lab.plugins`",
        name=__name__,
    )
