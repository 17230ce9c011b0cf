"""The lines ``verbose`` prints: one per epoch and one when training stops."""

import numpy as np


def epoch_line(epoch, objective, state, eta, elapsed, validation_score=None):
    """One epoch: the objective the ``tol`` rule watches, the weights' norm
    and intercept, the step size the last minibatch took, the samples seen,
    the time so far and (with early stopping) the validation score."""
    norm = np.sqrt(max(state.squared_norm(), 0.0))
    nnz = int(np.count_nonzero(state.coef))  # (verbose runs may scan the weights)
    line = (f"Epoch {epoch}: objective {objective:.6g}, norm {norm:.4g}, nnz {nnz}, "
            f"bias {float(np.mean(state.intercept)):.4g}, eta {eta:.3g}, "
            f"t {state.t:.0f}, {elapsed:.3f} s")
    if validation_score is not None:
        line += f", validation score {validation_score:.6g}"
    return line


def stop_line(n_iter, elapsed, *, converged, tol, patience, early_stopping, class_epochs=None,
              best_epoch=None):
    """Why training stopped, in scikit-learn's words where it has them
    ("Convergence after N epochs took T seconds"), and (with early stopping)
    the epoch whose model is kept."""
    if converged:
        watched = "validation score" if early_stopping else "training objective"
        line = (f"Convergence after {n_iter} epochs took {elapsed:.2f} seconds: the "
                f"{watched} did not improve by tol={tol!r} for {patience} epochs")
    elif tol is None:
        line = f"Ran max_iter={n_iter} epochs (tol=None) in {elapsed:.2f} seconds"
    else:
        line = (f"Stopped at max_iter={n_iter} epochs after {elapsed:.2f} seconds, "
                "before converging (see the ConvergenceWarning)")
    if class_epochs is not None and len(set(class_epochs)) > 1:
        line += f"; the classes stopped after {list(class_epochs)} epochs"
    if best_epoch is not None:
        line += f"; kept the model of epoch {best_epoch}, the best validation score"
    return line + "."
