"""The desktop app (Qt): it renders what the engine publishes and sends it commands."""

if __name__ != "gradient_lab.app":
    raise ImportError(
        f"this folder is the package gradient_lab.app, imported here as {__name__!r}: "
        "install Gradient Lab and write `import gradient_lab.app`",
        name=__name__,
    )
