"""Warnings skgd issues (besides scikit-learn's own)."""


class StepCapWarning(UserWarning):
    """The step-size cap shortened a step.

    skgd caps each minibatch step at what the data's curvature allows (see
    the user guide, "Batch size and step size"), which keeps large batches
    and unscaled data from diverging. At ``batch_size=1`` the steps are
    scikit-learn's unless they diverge; then the fit starts again under the
    cap, and this warning says so. Otherwise it says when the cap shortens a
    step an ``eta0`` schedule asks for. Either way it names the step (the
    weights' or the intercept's) with its numbers, and the run differs from
    scikit-learn's. At most one per ``fit``; filter it to silence it.
    """
