"""A toy objective from outside the package (docs/architecture.md, "How to add an
objective"): how far a program's `width` is from 12, reported over steps as a training
curve would be, maximised (its direction declared as a user declares it)."""


def closeness(program, ctx):  # type: ignore[no-untyped-def]
    distance = abs(program["width"] - 12)
    value = 0.0
    for step in range(1, 5):
        value = -distance - 1.0 / step
        ctx.report(step, value)
        if ctx.should_stop():
            break
    return {"score": value, "distance": distance}


closeness.direction = "maximize"  # type: ignore[attr-defined]
