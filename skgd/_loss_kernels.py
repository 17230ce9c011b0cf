"""How the compiled passes call a loss and count the objective.

Built-in losses arrive as a :class:`BuiltinLoss` token and are inlined into
the loop; a user's loss arrives as a pair of C function pointers (one
compiled pass serves every user loss) and reports its first non-finite
value. Then the class weights of each output, and the sums of loss plus
penalty that scikit-learn's tol rule watches.
"""

import numpy as np
from numba import types
from numba.extending import (
    NativeValue,
    intrinsic,
    models,
    overload,
    register_model,
    typeof_impl,
    unbox,
)

from . import losses as L
from ._jit import _JIT
from ._slots import ABS, H_L2, H_SCHEDULE, SQ
from .schedules import PA1, PA2

# ------------------------------------------------------- built-in loss tokens


class BuiltinLoss:
    """A compile-time token naming a built-in loss: the pass compiled for it
    calls the loss's functions directly, so LLVM inlines them."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"BuiltinLoss({self.name!r})"


class BuiltinLossType(types.Dummy):
    """numba type of a :class:`BuiltinLoss`; the name is part of the type."""

    def __init__(self, loss_name):
        self.loss_name = loss_name
        super().__init__(name=f"BuiltinLoss({loss_name})")


@typeof_impl.register(BuiltinLoss)
def _typeof_builtin_loss(val, c):
    return BuiltinLossType(val.name)


register_model(BuiltinLossType)(models.OpaqueModel)


@unbox(BuiltinLossType)
def _unbox_builtin_loss(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


#: name -> (value, derivative, multiclass) of every built-in loss
BUILTIN_LOSSES = {
    "hinge": (L._hinge, L._dhinge, False),
    "squared_hinge": (L._squared_hinge, L._dsquared_hinge, False),
    "log": (L._log, L._dlog, False),
    "modified_huber": (L._modified_huber, L._dmodified_huber, False),
    "squared_error": (L._squared_error, L._dsquared_error, False),
    "huber": (L._huber, L._dhuber, False),
    "epsilon_insensitive": (L._epsilon_insensitive, L._depsilon_insensitive, False),
    "squared_epsilon_insensitive": (L._squared_epsilon_insensitive,
                                    L._dsquared_epsilon_insensitive, False),
    "softmax": (L._softmax_loss, L._dsoftmax_loss, True),
    "multiclass_hinge": (L._multiclass_hinge, L._dmulticlass_hinge, True),
}


@intrinsic
def data_pointer(typingctx, arr):
    """The address of ``arr``'s first element, as a typed C pointer (to hand a
    score vector to a compiled multiclass loss)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return sig, codegen


# ------------------------------------------------------------ loss derivatives


def loss_derivatives(loss, params, scores, Y, i, out, values, report):
    """Loss of row ``i`` at ``scores`` into ``values``; its derivatives into
    ``out``.

    Scalar losses (one-vs-rest, binary, regression) apply to each output with
    its own target ``Y[i, k]`` (loss in ``values[k]``); multiclass losses take
    the whole score vector and the class index ``Y[i, 0]`` (loss in
    ``values[0]``, the other entries 0). Built-in losses are called directly
    (inlined); a user's loss through its C function pointers, and the first
    non-finite value it gives (an exception inside it gives NaN, see
    ``skgd.losses``) is reported as ``report = [1, score, target, output,
    row]`` (the row tells which of several parts of a split pass, see
    ``skgd._engine.SplitPass``, failed first).
    """


def _report(report, value, deriv, p, y, k, i):
    """Record the first non-finite value of a user's loss."""


@overload(_report, jit_options=_JIT)
def _report_impl(report, value, deriv, p, y, k, i):
    def impl(report, value, deriv, p, y, k, i):
        if report[0] == 0.0 and not (np.isfinite(value) and np.isfinite(deriv)):
            report[0] = 1.0
            report[1] = p
            report[2] = y
            report[3] = k
            report[4] = i

    return impl


@overload(loss_derivatives, jit_options=_JIT)
def _loss_derivatives(loss, params, scores, Y, i, out, values, report):
    if isinstance(loss, BuiltinLossType):
        value_fn, deriv_fn, multiclass = BUILTIN_LOSSES[loss.loss_name]
        if multiclass:

            def impl(loss, params, scores, Y, i, out, values, report):
                y = np.int64(Y[i, 0])
                deriv_fn(scores, y, out, *params)
                values[:] = 0.0
                values[0] = value_fn(scores, y, *params)

            return impl

    if not _is_multiclass(loss):

        def impl(loss, params, scores, Y, i, out, values, report):
            for k in range(scores.shape[0]):
                values[k], out[k] = scalar_loss(loss, params, scores[k], Y[i, k], report, k, i)

        return impl

    def impl(loss, params, scores, Y, i, out, values, report):  # a user's MulticlassLoss
        k = scores.shape[0]
        y = np.int64(Y[i, 0])
        loss[1](data_pointer(scores), k, y, data_pointer(out), *params)
        value = loss[0](data_pointer(scores), k, y, *params)
        deriv = 0.0
        total = 0.0  # finite when every score is
        for c in range(k):
            deriv += out[c]
            total += scores[c]
        _report(report, value, deriv, total, y, -1, i)
        values[:] = 0.0
        values[0] = value

    return impl


def _is_multiclass(loss):
    """Compile-time: whether the loss type is a multiclass one (it takes the
    whole score vector and the class index)."""
    if isinstance(loss, BuiltinLossType):
        return BUILTIN_LOSSES[loss.loss_name][2]
    value_t = loss[0]
    signature = value_t.signature() if callable(value_t.signature) else value_t.signature
    return isinstance(signature.args[0], types.CPointer)


def scalar_loss(loss, params, p, y, report, k, i):
    """``(value, derivative)`` of a scalar loss at score ``p`` and target
    ``y`` (output ``k``, row ``i``): a built-in loss inlined, a user's
    through its C function pointers, reporting its first non-finite value."""


@overload(scalar_loss, jit_options=_JIT)
def _scalar_loss(loss, params, p, y, report, k, i):
    if isinstance(loss, BuiltinLossType):
        value_fn, deriv_fn, _ = BUILTIN_LOSSES[loss.loss_name]
        return lambda loss, params, p, y, report, k, i: (value_fn(p, y, *params),
                                                         deriv_fn(p, y, *params))

    def impl(loss, params, p, y, report, k, i):
        v = loss[0](p, y, *params)
        d = loss[1](p, y, *params)
        _report(report, v, d, p, y, k, i)
        return v, d

    return impl


def report_loss(loss, report, value, deriv, p, y, k, i):
    """What :func:`scalar_loss` reports of a value and derivative computed
    with a report that records nothing (the row scores of a batch split
    across threads, see ``skgd._plain_pass``): a user's loss's first
    non-finite value, called row by row in the batch's order so that the
    first is the one a sequential pass records; nothing for a built-in loss."""


@overload(report_loss, jit_options=_JIT)
def _report_loss(loss, report, value, deriv, p, y, k, i):
    if isinstance(loss, BuiltinLossType):
        return lambda loss, report, value, deriv, p, y, k, i: None

    def impl(loss, report, value, deriv, p, y, k, i):
        _report(report, value, deriv, p, y, k, i)

    return impl


def report_losses(loss, report, scores, derivs, values, Y, i):
    """What :func:`loss_derivatives` reports of row ``i``'s ``scores``, its
    ``derivs`` and ``values``, when they were computed with a report that
    records nothing (a batch split across threads, see
    ``skgd._kernels.rows_losses_threaded``): called row by row in the
    batch's order; nothing for a built-in loss."""


@overload(report_losses, jit_options=_JIT)
def _report_losses(loss, report, scores, derivs, values, Y, i):
    if isinstance(loss, BuiltinLossType):
        return lambda loss, report, scores, derivs, values, Y, i: None

    if not _is_multiclass(loss):

        def impl(loss, report, scores, derivs, values, Y, i):
            for k in range(scores.shape[0]):
                _report(report, values[k], derivs[k], scores[k], Y[i, k], k, i)

        return impl

    def impl(loss, report, scores, derivs, values, Y, i):  # a user's MulticlassLoss
        deriv = 0.0
        total = 0.0  # finite when every score is
        for c in range(scores.shape[0]):
            deriv += derivs[c]
            total += scores[c]
        _report(report, values[0], deriv, total, np.int64(Y[i, 0]), -1, i)

    return impl


def output_weight(out_weight, Y, i, k):
    """Weight of output ``k``'s derivative on row ``i``: ``out_weight[k, 1]``
    for a positive target, ``out_weight[k, 0]`` otherwise (the class weights
    of one-vs-rest, as scikit-learn's ``weight_pos`` / ``weight_neg``; both
    0 for a class that stopped). 1 when ``out_weight`` is None."""


@overload(output_weight, jit_options=_JIT)
def _output_weight(out_weight, Y, i, k):
    if isinstance(out_weight, types.NoneType):
        return lambda out_weight, Y, i, k: 1.0

    def impl(out_weight, Y, i, k):
        return out_weight[k, 1] if Y[i, k] > 0.0 else out_weight[k, 0]

    return impl


def output_stopped(out_weight, Y, k):
    """Whether output ``k`` is a one-vs-rest class that stopped (weight 0 on
    both targets; a class's negatives always weigh 1 while it trains). Its
    derivatives are multiplied by 0, so the pass skips its scores: the
    epoch loop puts its weights back as they were when it stopped. False
    when ``out_weight`` is None."""


@overload(output_stopped, jit_options=_JIT)
def _output_stopped(out_weight, Y, k):
    if isinstance(out_weight, types.NoneType):
        return lambda out_weight, Y, k: False

    def impl(out_weight, Y, k):
        return out_weight[k, 0] == 0.0 and out_weight[k, 1] == 0.0

    return impl


def output_penalty(l1, hyper, scale, norms, k):
    """Output ``k``'s penalty at the current weights, 0 with a
    passive-aggressive schedule (scikit-learn's passive-aggressive objective
    is the loss alone)."""


@overload(output_penalty, jit_options=_JIT)
def _output_penalty(l1, hyper, scale, norms, k):
    with_l1 = not isinstance(l1, types.NoneType)

    def impl(l1, hyper, scale, norms, k):
        if PA1 <= hyper[H_SCHEDULE] <= PA2:
            return 0.0
        penalty = 0.5 * hyper[H_L2] * scale * scale * norms[k, SQ]
        if with_l1:
            penalty += l1 * abs(scale) * norms[k, ABS]
        return penalty

    return impl


def count_row(per_sample, objective, k, counted, value, l1, hyper, scale, norms):
    """Count a row's ``value`` of output ``k``, with weight ``counted``, in
    the objective: as scikit-learn's tol rule, which sums the loss plus the
    penalty of the weights each row sees.

    One row per step (``per_sample`` None): its penalty is added at once.
    Minibatches add the penalty once per batch (:func:`add_penalties`),
    summing the rows' weights in ``objective[2]`` until then. Both add the
    same terms in the same order; the first keeps the penalty's work and the
    scratch row out of the per-row loop's chain of loads and stores (about
    7 ns a row: 6-10% of a hinge epoch on reuters and adult).
    """


@overload(count_row, jit_options=_JIT)
def _count_row(per_sample, objective, k, counted, value, l1, hyper, scale, norms):
    if isinstance(per_sample, types.NoneType):

        def impl(per_sample, objective, k, counted, value, l1, hyper, scale, norms):
            objective[0, k] += counted * value
            objective[0, k] += counted * output_penalty(l1, hyper, scale, norms, k)
            objective[1, k] += counted

    else:

        def impl(per_sample, objective, k, counted, value, l1, hyper, scale, norms):
            objective[0, k] += counted * value
            objective[2, k] += counted

    return impl


def add_penalties(per_sample, objective, l1, hyper, scale, norms):
    """Add each output's penalty at the current weights, counted with the
    weight its batch's rows had in the objective (``objective[2]``, summed
    since the last call), to ``objective[0]``, and that weight to
    ``objective[1]`` (see :func:`count_row`; nothing when ``per_sample`` is
    None)."""


@overload(add_penalties, jit_options=_JIT)
def _add_penalties(per_sample, objective, l1, hyper, scale, norms):
    if isinstance(per_sample, types.NoneType):
        return lambda per_sample, objective, l1, hyper, scale, norms: None

    def impl(per_sample, objective, l1, hyper, scale, norms):
        for k in range(norms.shape[0]):
            penalty = output_penalty(l1, hyper, scale, norms, k)
            objective[0, k] += objective[2, k] * penalty
            objective[1, k] += objective[2, k]
            objective[2, k] = 0.0

    return impl
