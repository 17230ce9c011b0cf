"""Warnings skgd issues (besides scikit-learn's own)."""


class StepCapWarning(UserWarning):
    """The step-size cap shortened the steps ``eta0`` asked for.

    skgd caps each step at what the data's curvature allows (see the user
    guide, "Batch size and step size"), which keeps unscaled data from
    diverging; where the cap binds, an explicit ``eta0`` is not the step
    taken and the run differs from scikit-learn's. Filter this warning to
    silence it.
    """
