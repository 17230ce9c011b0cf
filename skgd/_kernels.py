"""The compiled minibatch SGD pass (numba).

One call of :func:`sgd_pass` runs every minibatch of one epoch (or of one
``partial_fit`` chunk). A minibatch is a chain of small named steps, in the
spirit of optax's ``chain``::

    scores and loss derivatives -> gradient -> clip by value -> clip by
    global norm -> L2 decay -> step (plain or momentum) -> L1 -> average

Each step that can be switched off is an ``overload`` chosen when the pass is
compiled: an option that is off arrives as ``None`` and its step compiles to
nothing. This general pass serves what buffers the gradient (clipping,
momentum), several outputs (one-vs-rest, multinomial), 'auto',
passive-aggressive steps and the undo journal of CSR streams; a
single-output model without those runs :func:`skgd._plain_pass.plain_pass`,
built from the same steps, where averaging and L1 are run-time choices (one
compiled pass per loss, layout and batch kind). Built-in losses arrive as a
:class:`BuiltinLoss` token and are inlined into the loop; a user's loss
arrives as a pair of C function pointers (one compiled pass serves every user
loss, and numba's disk cache keeps working).

Data layouts
------------
``X`` is a *dataset tuple*: ``(array2d,)`` for dense C-ordered rows, or
``(data, indices, indptr)`` for CSR (int32 or int64 indices). The row helpers
are ``overload``-ed on that tuple, so one kernel source serves both.

Weights
-------
``coef`` has shape ``(n_outputs, n_features)``: one row per output, so all
classes train in the same pass. The real weights are ``scale * coef``: L2
weight decay multiplies ``scale`` only, which keeps a sparse step as cheap as
the non-zeros it touches (Shalev-Shwartz et al. 2007, Bottou 2010). The
state's ``norms`` keep each output's ``sum(coef ** 2)`` (and, with L1 on,
``sum(|coef|)``) up to date as weights change, so the penalty, the objective
and the divergence check never scan all weights.

Averaging (ASGD, Polyak & Juditsky 1992) is lazy too: the sum of the weights
since averaging began is ``avg_coef + clock[AVG_B] * coef``. A step that
changes ``coef[k, j]`` by ``delta`` subtracts ``clock[AVG_B] * delta`` from
``avg_coef[k, j]``, and then ``clock[AVG_B]`` grows by ``scale``.

L1 uses the cumulative penalty of Tsuruoka, Tsujii & Ananiadou (2009): each
touched weight is pulled towards zero by the penalty it has not received yet,
clipped at zero, which produces exact zeros.

Cost
----
A pass costs the non-zeros it reads plus the number of outputs: scratch
space is sized by the largest minibatch's non-zeros, the columns a batch
touches are tracked in the state's persistent ``slot`` array (reset after
every batch), and an undo journal (CSR streams) records the columns of every
row before the row's step (undone newest first, so it needs no per-column
marks). Only momentum (every weight moves with its velocity) and folding the
lazy scale touch every weight.

(``sgd_pass`` compiles in code of other skgd files, such as the built-in
losses of ``skgd/losses.py``: its disk cache, like every skgd function's,
is stamped with a digest of all of skgd's sources, so an edit anywhere in
skgd recompiles it; see ``skgd._numba_cache``.)
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import (
    NativeValue,
    intrinsic,
    models,
    overload,
    register_model,
    typeof_impl,
    unbox,
)

from . import losses as L  # (which guards numba's cache: skgd._numba_cache)
from .schedules import AUTO, INVSCALING, OPTIMAL, PA1, PA2

# Slots of the float64 ``clock`` array (the engine's scalar state).
T = 0  # samples seen + 1 (scikit-learn's ``t_``)
SCALE = 1  # real weights = SCALE * coef
L1_U = 2  # total L1 penalty each weight could have received so far
AVG_B = 3  # coefficient of coef in the lazy sum of averaged weights
AVG_N = 4  # number of steps averaged so far
PASSES = 5  # passes run so far (seeds each pass's shuffle)
AVG_CHECK = 6  # sum of |changes| to avg_coef: non-finite once any overflowed
GRAD_SQ = 7  # 'auto': sum over the rows seen of s_i * |loss derivatives|^2
REACH = 8  # 'auto': the largest distance of the weights from the origin so far
BOUND = 9  # 'auto': bound on the optimum's weight norm, from the first batch (0: none yet)
N_CLOCK = 10

# Columns of the state's ``norms`` array, one row per output (unscaled coef).
SQ = 0  # sum of coef[k] ** 2, kept up to date
ABS = 1  # sum of |coef[k]|, kept up to date while L1 is on

# The run-time hyper-parameters travel as one float64 array (cheap for numba
# to dispatch on); these are its slots, in order.
HYPER_FIELDS = (
    "schedule",  # a code from skgd.schedules
    "alpha",  # used by the 'optimal' schedule
    "eta0",  # current base rate (lowered by 'adaptive')
    "power_t",
    "optimal_init",  # offset t0 of 'optimal'
    "l2",  # L2 strength alpha * (1 - l1_ratio), 0 if none
    "fit_intercept",  # 1 or 0
    "batch_size",
    "scale_min",  # when to fold the lazy L2 scale into coef
    "curv_full",  # curvature * lam: weights' step cap 1 / (curv_full + curv_max / m)
    "curv_max",  # curvature * l_max; 0 = no cap (lam, l_max: see make_hyper)
    "curv_b_full",  # the same two for the intercepts' step (skgd._smoothness)
    "curv_b_max",
    "cap_floor",  # 1: the cap never goes below one per-sample step (Loss.per_sample_floor)
    "prefetch_weights",  # 1: prefetch the weights sparse rows read (a model beyond L2)
    "prefetch_rows",  # 1: prefetch the rows ahead (data beyond L2)
    "weighted_objective",  # 1: the objective weighs rows by sample (and class) weight
    "intercept_decay",  # factor of the intercepts' step (0.01 on sparse data, else 1)
    "row_sq",  # 'auto': mean |x|^2 (+ 1 with an intercept) of the data seen
    "online",  # 'auto': 1 in a partial_fit pass (rows seen once: the reach starts at BOUND)
)
(H_SCHEDULE, H_ALPHA, H_ETA0, H_POWER_T, H_OPTIMAL_INIT, H_L2, H_FIT_INTERCEPT,
 H_BATCH_SIZE, H_SCALE_MIN, H_CURV_FULL, H_CURV_MAX, H_CURV_B_FULL, H_CURV_B_MAX,
 H_CAP_FLOOR, H_PREFETCH_WEIGHTS, H_PREFETCH_ROWS, H_WEIGHTED_OBJECTIVE,
 H_INTERCEPT_DECAY, H_ROW_SQ, H_ONLINE) = range(len(HYPER_FIELDS))

# error_model="numpy": a division by zero gives inf or NaN (which the
# divergence check reports) instead of a Python exception, and the divisions
# carry no zero test.
_JIT = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy")

# A step called once per row at batch_size=1 that LLVM's own cost model
# leaves out of line (its loops, vectorised, look too big to inline) is
# marked ``alwaysinline``: a call there copies every array argument's
# struct onto the stack and, around it, increments and decrements each
# array's reference count with atomic operations, which the inlined code
# needs neither of (about 12 ms of a 44 ms dense epoch of 200k rows).
# numba's ``forceinline`` is LLVM's attribute, unlike ``inline='always'``
# (which retypes the callee in each caller and costs compile time).
_INLINE = dict(_JIT, forceinline=True)
# A helper compiled while inlining one inherits ``forceinline`` unless its own
# options set it (numba), and a helper is compiled once per signature, by
# whichever pass needs it first: every helper that both an inlined and a
# called step use states it, so the code built never depends on that order.
_CALL = dict(_JIT, forceinline=False)

# Rows are visited in a random order, so each one is a cache miss the CPU
# cannot predict; fetching a few rows ahead overlaps those misses with work.
# The weights a sparse row reads are fetched once its indices have arrived,
# WEIGHTS_AHEAD rows ahead.
LOOKAHEAD = 8
WEIGHTS_AHEAD = 2


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


# ------------------------------------------------------------ prefetching


def _prefetch_codegen(n_indices):
    """Code of ``llvm.prefetch`` of an array element given ``n_indices``
    indices (read, high temporal locality, data cache)."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, list(args[1:1 + n_indices]),
                                       wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return codegen


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the CPU to bring ``arr[idx]`` into cache; a hint, with no effect
    on results."""
    if not isinstance(arr, types.Array) or arr.ndim != 1:
        return None
    return types.void(arr, types.intp), _prefetch_codegen(1)


@intrinsic
def prefetch_2d(typingctx, arr, i, j):
    """:func:`prefetch` of ``arr[i, j]`` for a 2-D array (indexing it whole,
    rather than through a row view)."""
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None
    return types.void(arr, types.intp, types.intp), _prefetch_codegen(2)


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


def _dense(X):
    return len(X) == 1


# --------------------------------------------------------------- row helpers


# CSR positions and columns are read as unsigned integers: numba then emits
# no wrap-around test (a negative index counts from the end) on each access,
# which cost a fifth to a third of a sparse epoch of short rows. The
# estimators check that indptr is non-decreasing from 0 and every column
# index lies in [0, n_features) before any pass (skgd._base).


@numba.njit(**_JIT)
def row_span(indptr, i):
    """``(start, stop)`` of CSR row ``i``'s entries, unsigned."""
    return np.uint64(indptr[i]), np.uint64(indptr[i + 1])


@numba.njit(**_JIT)
def column(indices, jj):
    """The column of CSR entry ``jj``, unsigned."""
    return np.uint64(indices[jj])



# The helpers index 2-D arrays directly (``W[k, j]``, ``X[0][i, j]``): a
# row view such as ``W[k]`` would be reference-counted on every call.


def row_dot(X, i, W, k):
    """``X[i] . W[k]`` (compiled; dense or CSR)."""


@overload(row_dot, jit_options=_JIT)
def _row_dot(X, i, W, k):
    if _dense(X):

        def impl(X, i, W, k):
            x = X[0]
            s = 0.0
            for j in range(x.shape[1]):
                s += x[i, j] * W[k, j]
            return s

    else:

        def impl(X, i, W, k):
            data, indices, indptr = X
            s = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                s += data[jj] * W[k, column(indices, jj)]
            return s

    return impl


def row_sqnorm(X, i):
    """``||X[i]||^2`` (compiled; dense or CSR)."""


@overload(row_sqnorm, jit_options=_JIT)
def _row_sqnorm(X, i):
    if _dense(X):

        def impl(X, i):
            x = X[0]
            s = 0.0
            for j in range(x.shape[1]):
                s += x[i, j] * x[i, j]
            return s

    else:

        def impl(X, i):
            data, indices, indptr = X
            s = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                s += data[jj] * data[jj]
            return s

    return impl


def row_update(X, i, c, W, k, l1):
    """``W[k] += c * X[i]``; returns the changes of ``sum(W**2)`` and, when L1
    is on (``l1`` not None), of ``sum(|W|)`` (else 0)."""


@overload(row_update, jit_options=_INLINE)
def _row_update(X, i, c, W, k, l1):
    track_abs = not isinstance(l1, types.NoneType)
    if _dense(X):

        def impl(X, i, c, W, k, l1):
            x = X[0]
            dsq = 0.0
            dab = 0.0
            for j in range(x.shape[1]):
                old = W[k, j]
                new = old + c * x[i, j]
                W[k, j] = new
                dsq += new * new - old * old
                if track_abs:
                    dab += abs(new) - abs(old)
            return dsq, dab

    else:

        def impl(X, i, c, W, k, l1):
            data, indices, indptr = X
            dsq = 0.0
            dab = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                j = column(indices, jj)
                old = W[k, j]
                new = old + c * data[jj]
                W[k, j] = new
                dsq += new * new - old * old
                if track_abs:
                    dab += abs(new) - abs(old)
            return dsq, dab

    return impl


def row_axpy(X, i, c, W, k):
    """``W[k] += c * X[i]``; returns ``sum(|c * X[i]|)``."""


@overload(row_axpy, jit_options=_JIT)
def _row_axpy(X, i, c, W, k):
    if _dense(X):

        def impl(X, i, c, W, k):
            x = X[0]
            moved = 0.0
            for j in range(x.shape[1]):
                d = c * x[i, j]
                W[k, j] += d
                moved += abs(d)
            return moved

    else:

        def impl(X, i, c, W, k):
            data, indices, indptr = X
            moved = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                d = c * data[jj]
                W[k, column(indices, jj)] += d
                moved += abs(d)
            return moved

    return impl


def row_gather_axpy(X, i, c, slot, G, k):
    """``G[k, slot[j]] += c * X[i, j]``: a row into a batch's compact gradient."""


@overload(row_gather_axpy, jit_options=_JIT)
def _row_gather_axpy(X, i, c, slot, G, k):
    if _dense(X):

        def impl(X, i, c, slot, G, k):
            x = X[0]
            for j in range(x.shape[1]):
                if x[i, j] != 0.0:
                    G[k, slot[j]] += c * x[i, j]

    else:

        def impl(X, i, c, slot, G, k):
            data, indices, indptr = X
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                if data[jj] != 0.0:
                    G[k, slot[column(indices, jj)]] += c * data[jj]

    return impl


def prefetch_row(X, i):
    """Prefetch row ``i`` (every cache line of it)."""


@overload(prefetch_row, jit_options=_JIT)
def _prefetch_row(X, i):
    if _dense(X):

        def impl(X, i):
            x = X[0]
            for j in range(0, x.shape[1], 8):
                prefetch_2d(x, i, j)

    else:

        def impl(X, i):
            data, indices, indptr = X
            lo, hi = indptr[i], indptr[i + 1]
            for jj in range(lo, hi, 8):
                prefetch(data, jj)
                prefetch(indices, jj)

    return impl


def prefetch_weights(X, i, coef):
    """Prefetch the weights row ``i`` will read (CSR: scattered over a model
    that may be far larger than the cache; dense rows read every weight
    in order, which the CPU prefetches by itself)."""


@overload(prefetch_weights, jit_options=_JIT)
def _prefetch_weights(X, i, coef):
    if _dense(X):
        return lambda X, i, coef: None

    def impl(X, i, coef):
        data, indices, indptr = X
        lo, hi = row_span(indptr, i)
        for jj in range(lo, hi):
            for k in range(coef.shape[0]):
                prefetch_2d(coef, k, column(indices, jj))

    return impl


def mark_row(X, i, slot, touched, n_touched):
    """Give each column where row ``i`` is non-zero a slot in the batch's
    compact gradient (``slot[j]``, listed in ``touched``); return the count.

    Dense and CSR rows mark the same columns, so the lazy L1 penalty and
    clipping act identically on both layouts.
    """


@overload(mark_row, jit_options=_JIT)
def _mark_row(X, i, slot, touched, n_touched):
    if _dense(X):

        def impl(X, i, slot, touched, n_touched):
            x = X[0]
            for j in range(x.shape[1]):
                if x[i, j] != 0 and slot[j] < 0:
                    slot[j] = n_touched
                    touched[n_touched] = j
                    n_touched += 1
            return n_touched

    else:

        def impl(X, i, slot, touched, n_touched):
            data, indices, indptr = X
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                j = column(indices, jj)
                if data[jj] != 0 and slot[j] < 0:
                    slot[j] = n_touched
                    touched[n_touched] = j
                    n_touched += 1
            return n_touched

    return impl


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


# ------------------------------------------------------------ the schedule


@numba.njit(**_JIT)
def passive_aggressive_step(schedule, c, loss, sq_norm):
    """The step ``tau`` of a passive-aggressive update (Crammer et al. 2006)
    with aggressiveness ``c`` for a row of squared norm ``sq_norm`` and
    loss ``loss``: PA-I ``min(c, loss / sq_norm)`` (0 for an empty row,
    which scikit-learn skips), PA-II ``loss / (sq_norm + 1 / (2 c))``."""
    if schedule == PA1:
        return min(c, loss / sq_norm) if sq_norm > 0.0 else 0.0
    return loss / (sq_norm + 0.5 / c)


@numba.njit(**_JIT)
def schedule_params(hyper):
    """The schedule's fields of ``hyper`` as a tuple (kept in registers by a
    pass: ``(schedule, alpha, eta0, power_t, optimal_init)``)."""
    return (hyper[H_SCHEDULE], hyper[H_ALPHA], hyper[H_ETA0], hyper[H_POWER_T],
            hyper[H_OPTIMAL_INIT])


@numba.njit(**_JIT)
def schedule_rate(params, t):
    """Per-sample learning rate at sample count ``t`` (see skgd.schedules) of
    the :func:`schedule_params` ``params``."""
    schedule, alpha, eta0, power_t, optimal_init = params
    if schedule == OPTIMAL:
        return 1.0 / (alpha * (optimal_init + t - 1.0))
    if schedule == INVSCALING:
        return eta0 / t ** power_t
    if schedule == AUTO:  # set per batch by the pass (auto_rate); unknown here: the cap's
        return np.inf
    return eta0  # constant, adaptive (the driver lowers eta0), PA (decay rate)


@numba.njit(**_JIT)
def learning_rate(hyper, t):
    """Per-sample learning rate at sample count ``t`` (see skgd.schedules)."""
    return schedule_rate(schedule_params(hyper), t)


@numba.njit(**_JIT)
def step_cap(curv_full, curv_max, m):
    """The longest step a batch of ``m`` rows may take, ``1 / (curv_full +
    curv_max / m)``; ``inf`` (no cap) when ``curv_max`` is 0."""
    if curv_max > 0.0:
        return 1.0 / (curv_full + curv_max / m)
    return np.inf


@numba.njit(**_JIT)
def step_caps(hyper, m, clip_factor=1.0):
    """The :func:`step_cap` of the weights and of the intercepts for a batch of
    ``m`` rows whose gradient was clipped by ``clip_factor``."""
    return (step_cap(clip_factor * hyper[H_CURV_FULL], clip_factor * hyper[H_CURV_MAX], m),
            step_cap(clip_factor * hyper[H_CURV_B_FULL], clip_factor * hyper[H_CURV_B_MAX], m))


@numba.njit(**_JIT)
def minibatch_step(rate, m, cap, floor):
    """Step size of a batch of ``m`` rows: ``m * rate`` (linear scaling),
    at most ``cap`` (:func:`step_cap`); with ``floor``, a capped step is
    never below one per-sample step ``rate``."""
    eta = m * rate
    if cap < np.inf:
        eta = min(eta, cap)
        if floor:
            eta = max(eta, rate)
    return eta


@numba.njit(**_JIT)
def batch_steps(rate, m, caps, floor, intercept_decay):
    """Step sizes ``(eta, eta_b)`` of the weights and the intercepts of a
    batch of ``m`` rows at the per-sample ``rate``, under ``caps``
    (:func:`step_caps`), the intercepts' damped by ``intercept_decay``."""
    return (minibatch_step(rate, m, caps[0], floor),
            minibatch_step(rate, m, caps[1], floor) * intercept_decay)


@numba.njit(**_JIT)
def step_sizes(hyper, t, m, clip_factor=1.0, rate=-1.0):
    """Step sizes ``(eta, eta_b)`` of the weights and the intercepts for a
    batch of ``m`` rows starting at sample count ``t``: ``m`` per-sample
    steps at the batch's middle sample, each block under its own cap
    (skgd._smoothness), the intercepts' then damped on sparse data
    (``H_INTERCEPT_DECAY``). A gradient clipped by ``clip_factor`` is that
    of the loss scaled by it, whose curvature is scaled alike: the caps
    widen by ``1 / clip_factor`` (else clipping and the cap would both
    shrink the same step). ``rate``, when >= 0, is the per-sample rate
    ('auto' measures it per batch: :func:`auto_rate`)."""
    if rate < 0.0:
        rate = learning_rate(hyper, t + 0.5 * (m - 1))
    return batch_steps(rate, m, step_caps(hyper, m, clip_factor), hyper[H_CAP_FLOOR] != 0.0,
                       hyper[H_INTERCEPT_DECAY])


@numba.njit(**_JIT)
def auto_step_sizes(hyper, t, m, batch, rate, clip_factor=1.0):
    """Step sizes of 'auto' for a batch of ``m`` rows at its per-sample
    ``rate``: ``(eta, eta_b, full_eta)``, where ``full_eta`` is the weights'
    step of a full batch of ``batch`` rows (:func:`step_sizes`). A shorter
    batch (the rows left over at the end of a pass) takes ``m / batch`` of a
    full batch's steps, and its momentum is a full batch's (the caller's
    :func:`auto_momentum` of ``full_eta``).

    Under the cap a full batch steps less per row than its rate; the short
    batch, below the cap, would step its few rows many times further (10x
    on digits at ``batch_size=256``), a kick of noise every pass. And by its
    own step it would want no momentum and wipe the velocity each pass: on
    digits at 256, 7 batches a pass, the momentum never built up.
    """
    eta, eta_b = step_sizes(hyper, t, batch, clip_factor, rate)
    if m == batch:
        return eta, eta_b, eta
    return eta * m / batch, eta_b * m / batch, eta


# 'auto' starts from a step this far from the origin (DoG's r_epsilon); its
# steps then grow geometrically while the weights move.
AUTO_FIRST_REACH = 1e-4


@numba.njit(**_JIT)
def weight_norm_bound(hyper, objective):
    """A bound on the norm of the optimum's weights, from the objective at
    the starting weights ``w0``: with an L2 penalty of strength ``l2``,
    ``l2 / 2 * |w*|^2 <= F(w*) <= F(w0)``, so ``|w*| <= sqrt(2 F(w0) /
    l2)``. ``F(w0)`` is the first batch's mean objective (``objective`` as
    :func:`sgd_pass` sums it; any later weights also give a bound). 0
    without an L2 penalty (no bound)."""
    f = 0.0
    for k in range(objective.shape[1]):
        if objective[1, k] > 0.0:
            f += objective[0, k] / objective[1, k]
    l2 = hyper[H_L2]
    return np.sqrt(2.0 * f / l2) if l2 > 0.0 and f > 0.0 else 0.0


@numba.njit(**_JIT)
def auto_rate(clock, hyper, norms, intercept):
    """The per-sample rate of 'auto': distance over gradients (DoG; Ivgi,
    Hinder & Carmon 2023), ``r / sqrt(G)``, where ``r`` is the farthest the
    weights (with the intercepts) have been from the origin and ``G`` the
    sum over the rows seen of their squared gradient norms,
    ``s_i * |dloss_i|^2 * (|x|^2 + 1)`` with ``|x|^2`` the data's mean
    (``H_ROW_SQ``). Large while the weights travel, it falls as ``1 /
    sqrt(t)`` where gradients stay noisy and stays large where they vanish,
    with nothing to tune. 0 before any gradient (nothing to step along).

    In a ``partial_fit`` pass (``H_ONLINE``) ``r`` is at least ``BOUND``
    (:func:`weight_norm_bound`): a stream sees each row once, and on sparse
    rows the weights' steps scatter over many columns, so the distance
    grows only as ``sqrt(t)``, too slowly for DoG to find the optimum's in
    one pass. Online gradient descent against the comparators within that
    bound steps ``r / sqrt(G)`` with ``r`` the bound (Zinkevich 2003; the
    step cap still holds it). A fit revisits its rows, and DoG's measured
    distance, which is smaller, keeps its late steps quiet."""
    scale = clock[SCALE]
    dist2 = 0.0
    for k in range(norms.shape[0]):
        dist2 += scale * scale * norms[k, SQ] + intercept[k] * intercept[k]
    reach = max(clock[REACH], np.sqrt(max(dist2, 0.0)), AUTO_FIRST_REACH)
    clock[REACH] = reach
    if hyper[H_ONLINE] != 0.0:
        reach = max(reach, clock[BOUND])
    g = clock[GRAD_SQ] * hyper[H_ROW_SQ]
    return reach / np.sqrt(g) if g > 0.0 else 0.0


@numba.njit(**_JIT)
def auto_momentum(mu_max, eta, wanted):
    """Momentum of 'auto' when the cap shortens the step it wants: heavy
    ball with ``mu = 1 - eta / wanted`` (at most ``mu_max``), whose long-run
    step ``eta / (1 - mu)`` is the one wanted. Large batches with quiet
    gradients are held by the cap, not by noise; momentum lets them travel
    (Polyak 1964) without a step beyond the stability limit."""
    if not wanted > eta:
        return 0.0
    return min(mu_max, 1.0 - eta / wanted)


@numba.njit(**_JIT)
def decayed_scale(scale, eta, l2):
    """The lazy scale after one step of L2 weight decay."""
    return scale * max(0.0, 1.0 - eta * l2)


@numba.njit(**_JIT)
def pass_would_fold(clock, hyper, n_rows, clipped):
    """Whether a pass of ``n_rows`` from this clock folds the lazy scale
    (it depends on the schedule only, not on the data): such a pass changes
    every weight, so its undo needs a full copy rather than a journal.
    With global-norm clipping (``clipped``) a step may widen its cap up to
    no cap at all (see :func:`step_sizes`), so that is assumed."""
    l2 = hyper[H_L2]
    if l2 <= 0.0:
        return False
    batch = np.int64(hyper[H_BATCH_SIZE])
    scale = clock[SCALE]
    t = clock[T]
    for start in range(0, n_rows, batch):
        m = min(batch, n_rows - start)
        eta, _ = step_sizes(hyper, t, m, 0.0 if clipped else 1.0)
        scale = decayed_scale(scale, eta, l2)
        # a margin: the pass itself must never meet a fold it was not
        # promised, whatever the rounding
        if scale < 2.0 * hyper[H_SCALE_MIN]:
            return True
        t += m
    return False


# --------------------------------------------------------------- shuffling


@numba.njit(**_JIT)
def splitmix64(state):
    """One step of SplitMix64 (Steele, Lea & Flood 2014): (new state, output)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@numba.njit(**_JIT)
def shuffle_in_place(order, seed, pass_number):
    """Fisher-Yates shuffle of ``order``, a pure function of (seed, pass).

    Keeping the generator's whole state in two integers makes a pass
    reproducible from the engine state alone (pickling, failed calls).
    """
    state = np.uint64(seed) ^ (np.uint64(pass_number) * np.uint64(0xD1B54A32D192ED03))
    state, _ = splitmix64(state)
    for i in range(order.shape[0] - 1, 0, -1):
        state, r = splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


# ------------------------------------------------------------ the lazy scale


@numba.njit(**_JIT)
def recount_norms(coef, norms):
    """Recompute every output's ``norms`` exactly."""
    for k in range(coef.shape[0]):
        sq = 0.0
        ab = 0.0
        for j in range(coef.shape[1]):
            v = coef[k, j]
            sq += v * v
            ab += abs(v)
        norms[k, SQ] = sq
        norms[k, ABS] = ab


@numba.njit(**_JIT)
def fold_scale(coef, clock, avg_coef, norms):
    """Multiply ``scale`` into ``coef`` and reset it to 1.

    Keeps ``coef`` from growing as ``1 / scale``; with averaging on it also
    makes the lazy sum explicit (``avg_coef += AVG_B * coef``), which bounds
    the cancellation in ``avg_coef + AVG_B * coef``. Touches every weight,
    so the norms are recounted exactly on the way.
    """
    scale = clock[SCALE]
    b = clock[AVG_B]
    for k in range(coef.shape[0]):
        for j in range(coef.shape[1]):
            if b != 0.0:
                avg_coef[k, j] += b * coef[k, j]
            coef[k, j] *= scale
    clock[AVG_B] = 0.0
    clock[SCALE] = 1.0
    recount_norms(coef, norms)


def l2_decay(clock, hyper, eta, journal):
    """Step 2: L2 weight decay, lazily through the scale. Returns whether the
    scale got small enough to be folded into the weights (never inside a
    journaled pass, which was promised no fold: see :func:`pass_would_fold`).

    The fold itself is left to the caller: kept out of this small step, it
    does not stop LLVM from inlining the step into the per-row loop (a call
    there cost a third of an epoch on adult).
    """


@overload(l2_decay, jit_options=_JIT)
def _l2_decay(clock, hyper, eta, journal):
    may_fold = journal is None or isinstance(journal, types.NoneType)

    def impl(clock, hyper, eta, journal):
        l2 = hyper[H_L2]
        if l2 > 0.0:
            clock[SCALE] = decayed_scale(clock[SCALE], eta, l2)
            return may_fold and clock[SCALE] < hyper[H_SCALE_MIN]
        return False

    return impl


# ----------------------------------------------------------- the undo journal


@numba.njit(**_JIT)
def copy_column(dst, dst_col, src, src_col):
    """``dst[:, dst_col] = src[:, src_col]``."""
    for k in range(dst.shape[0]):
        dst[k, dst_col] = src[k, src_col]


def journal_row(journal, X, i, coef, avg_coef, l1_applied):
    """Record the current weights, averaging sums and L1 ledger of row
    ``i``'s columns, before this batch changes them.

    Every row is recorded, repeats included, in order: undoing the records
    in reverse puts back, for each column, its value from before the pass.
    So the journal needs no per-column marks, and it reads what the row's
    scores read next (from cache).
    """


@overload(journal_row, jit_options=_JIT)
def _journal_row(journal, X, i, coef, avg_coef, l1_applied):
    if isinstance(journal, types.NoneType):
        return lambda journal, X, i, coef, avg_coef, l1_applied: None

    def impl(journal, X, i, coef, avg_coef, l1_applied):
        cols, saved_coef, saved_avg, saved_l1, count = journal
        data, indices, indptr = X
        n = count[0]
        lo, hi = row_span(indptr, i)
        for jj in range(lo, hi):
            j = column(indices, jj)
            cols[n] = j
            copy_column(saved_coef, n, coef, j)
            if saved_avg.shape[1] > 0:
                copy_column(saved_avg, n, avg_coef, j)
            if saved_l1.shape[1] > 0:
                copy_column(saved_l1, n, l1_applied, j)
            n += 1
        count[0] = n

    return impl


@numba.njit(**_JIT)
def journal_undo(journal, coef, avg_coef, l1_applied):
    """Put back every recorded value, newest first (one compiled call, so no
    interrupt can land half way)."""
    cols, saved_coef, saved_avg, saved_l1, count = journal
    for n in range(count[0] - 1, -1, -1):
        j = cols[n]
        copy_column(coef, j, saved_coef, n)
        if saved_avg.shape[1] > 0:
            copy_column(avg_coef, j, saved_avg, n)
        if saved_l1.shape[1] > 0:
            copy_column(l1_applied, j, saved_l1, n)
    count[0] = 0


# ------------------------------------------------------------ the update steps


def clip_by_value(grad, grad_b, n_touched, limit):
    """Step: clip each gradient component to ``[-limit, limit]``.

    Gradient clipping by value (Mikolov 2012, Pascanu et al. 2013).
    """


@overload(clip_by_value, jit_options=_JIT)
def _clip_by_value(grad, grad_b, n_touched, limit):
    if isinstance(limit, types.NoneType):
        return lambda grad, grad_b, n_touched, limit: None

    def impl(grad, grad_b, n_touched, limit):
        for k in range(grad.shape[0]):
            for s in range(n_touched):
                grad[k, s] = min(max(grad[k, s], -limit), limit)
            grad_b[k] = min(max(grad_b[k], -limit), limit)

    return impl


def clip_by_global_norm(grad, grad_b, n_touched, max_norm):
    """Step: the factor that rescales the whole gradient to an L2 norm of at
    most ``max_norm`` (1 when off).

    Gradient clipping by norm (Pascanu, Mikolov & Bengio 2013). The norm is
    taken over all outputs and the intercepts together.
    """


@overload(clip_by_global_norm, jit_options=_JIT)
def _clip_by_global_norm(grad, grad_b, n_touched, max_norm):
    if isinstance(max_norm, types.NoneType):
        return lambda grad, grad_b, n_touched, max_norm: 1.0

    def impl(grad, grad_b, n_touched, max_norm):
        sq = 0.0
        for k in range(grad.shape[0]):
            for s in range(n_touched):
                sq += grad[k, s] * grad[k, s]
            sq += grad_b[k] * grad_b[k]
        norm = np.sqrt(sq)
        if norm > max_norm:
            return max_norm / norm
        return 1.0

    return impl


def apply_gradient(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                   touched, n_touched, slot, eta, eta_b, clock, norms):
    """Step: move the weights along the batch gradient ``grad`` (compact,
    ``grad[:, s]`` for column ``touched[s]``), plainly or with momentum
    ``mu`` (see :func:`momentum_coefficient`)."""


@overload(apply_gradient, jit_options=_JIT)
def _apply_gradient(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                    touched, n_touched, slot, eta, eta_b, clock, norms):
    if isinstance(momentum, types.NoneType):

        def impl(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
                 touched, n_touched, slot, eta, eta_b, clock, norms):
            scale = clock[SCALE]
            avg_b = clock[AVG_B]
            c = -eta / scale
            moved = 0.0
            for k in range(coef.shape[0]):
                dsq = 0.0
                dab = 0.0
                for s in range(n_touched):
                    j = touched[s]
                    delta = c * grad[k, s]
                    old = coef[k, j]
                    new = old + delta
                    coef[k, j] = new
                    dsq += new * new - old * old
                    dab += abs(new) - abs(old)
                    if avg_b != 0.0:
                        avg_coef[k, j] -= avg_b * delta
                        moved += abs(avg_b * delta)
                intercept[k] -= eta_b * grad_b[k]
                norms[k, SQ] += dsq
                norms[k, ABS] += dab
            clock[AVG_CHECK] += moved

        return impl

    def impl(momentum, mu, coef, intercept, avg_coef, velocity, velocity_b, grad, grad_b,
             touched, n_touched, slot, eta, eta_b, clock, norms):
        # Heavy-ball momentum (Polyak 1964) or Nesterov's form (Sutskever et
        # al. 2013, as PyTorch writes it): v = mu * v - eta * g, then
        # w += v (heavy ball) or w += mu * v - eta * g (Nesterov). L2 is
        # decoupled weight decay (through the scale), so the velocity carries
        # the loss gradient only. Every weight moves with its velocity: a
        # step costs a pass over all weights, even on sparse data.
        nesterov = momentum[1]
        scale = clock[SCALE]
        avg_b = clock[AVG_B]
        moved = 0.0
        for k in range(coef.shape[0]):
            for j in range(coef.shape[1]):
                s = slot[j]
                g = grad[k, s] if s >= 0 else 0.0
                v = mu * velocity[k, j] - eta * g
                velocity[k, j] = v
                delta = mu * v - eta * g if nesterov else v
                if delta != 0.0:
                    delta /= scale
                    coef[k, j] += delta
                    if avg_b != 0.0:
                        avg_coef[k, j] -= avg_b * delta
                        moved += abs(avg_b * delta)
            g = grad_b[k]
            v = mu * velocity_b[k] - eta_b * g
            velocity_b[k] = v
            intercept[k] += mu * v - eta_b * g if nesterov else v
        clock[AVG_CHECK] += moved
        recount_norms(coef, norms)

    return impl


def momentum_coefficient(momentum, auto, eta, wanted):
    """The momentum of this step: the rule's, or with 'auto' (whose rule
    carries the most it may use) what :func:`auto_momentum` gives; 0 when
    momentum is off."""


@overload(momentum_coefficient, jit_options=_JIT)
def _momentum_coefficient(momentum, auto, eta, wanted):
    if isinstance(momentum, types.NoneType):
        return lambda momentum, auto, eta, wanted: 0.0

    def impl(momentum, auto, eta, wanted):
        if auto:
            return auto_momentum(momentum[0], eta, wanted)
        return momentum[0]

    return impl


def l1_penalty(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta):
    """Step: the cumulative L1 penalty on the weights this batch touched
    (Tsuruoka, Tsujii & Ananiadou 2009); nothing when L1 is off."""


@overload(l1_penalty, jit_options=_JIT)
def _l1_penalty(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta):
    if isinstance(l1, types.NoneType):
        return lambda l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta: None

    def impl(l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched, eta):
        clock[L1_U] += eta * l1
        u = clock[L1_U]
        scale = clock[SCALE]
        b = clock[AVG_B]
        moved = 0.0
        for s in range(n_touched):
            j = touched[s]
            for k in range(coef.shape[0]):
                d_sq, d_ab, d_moved = penalize_l1(j, u, scale, b, coef, l1_applied, avg_coef, k)
                norms[k, SQ] += d_sq
                norms[k, ABS] += d_ab
                moved += d_moved
        clock[AVG_CHECK] += moved

    return impl


def row_l1_penalties(l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
                     skip_stopped):
    """Step: :func:`l1_penalty` for a per-sample step, on row ``i``'s columns
    (no marking: see :func:`row_l1_penalty`), each output's in turn; the
    stopped one-vs-rest classes are skipped if ``skip_stopped`` (their
    weights are put back as they stopped). Nothing when L1 is off."""


@overload(row_l1_penalties, jit_options=_JIT)
def _row_l1_penalties(l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
                      skip_stopped):
    if isinstance(l1, types.NoneType):
        return (lambda l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
                skip_stopped: None)

    def impl(l1, X, i, coef, l1_applied, avg_coef, clock, norms, eta, out_weight, Y,
             skip_stopped):
        clock[L1_U] += eta * l1
        u = clock[L1_U]
        scale = clock[SCALE]
        b = clock[AVG_B]
        moved = 0.0
        for k in range(coef.shape[0]):
            if skip_stopped and output_stopped(out_weight, Y, k):
                continue
            d_sq, d_ab, d_moved = row_l1_penalty(X, i, u, scale, b, coef, l1_applied, avg_coef, k)
            norms[k, SQ] += d_sq
            norms[k, ABS] += d_ab
            moved += d_moved
        clock[AVG_CHECK] += moved

    return impl


def row_l1_penalty(X, i, u, scale, avg_b, W, Q, A, k):
    """The cumulative L1 penalty on row ``i``'s columns of ``W[k]`` (per-sample
    steps: the row's columns are the step's); returns the changes of
    ``sum(W**2)`` and ``sum(|W|)`` and the lazy average's movement.

    The penalty is idempotent on a column (a second application finds the
    weight already paid up to ``u``), so a CSR row's duplicate columns need
    no marking. ``Q`` is the ledger of penalties applied, ``A`` the lazy
    average (corrected only while ``avg_b`` is non-zero).
    """


@numba.njit(**_INLINE)
def penalize_l1(j, u, scale, avg_b, W, Q, A, k):
    """The cumulative L1 penalty on ``W[k, j]`` (see :func:`row_l1_penalty`)."""
    old = W[k, j]
    w = scale * old
    z = w
    if w > 0.0:
        w = max(0.0, w - (u + Q[k, j]))
    elif w < 0.0:
        w = min(0.0, w + (u - Q[k, j]))
    Q[k, j] += w - z
    new = w / scale
    W[k, j] = new
    moved = 0.0
    if avg_b != 0.0:
        A[k, j] -= avg_b * (new - old)
        moved = abs(avg_b * (new - old))
    return new * new - old * old, abs(new) - abs(old), moved


@overload(row_l1_penalty, jit_options=_INLINE)
def _row_l1_penalty(X, i, u, scale, avg_b, W, Q, A, k):
    if _dense(X):

        def impl(X, i, u, scale, avg_b, W, Q, A, k):
            x = X[0]
            dsq = 0.0
            dab = 0.0
            moved = 0.0
            for j in range(x.shape[1]):
                if x[i, j] != 0:
                    a, b_, c = penalize_l1(j, u, scale, avg_b, W, Q, A, k)
                    dsq += a
                    dab += b_
                    moved += c
            return dsq, dab, moved

    else:

        def impl(X, i, u, scale, avg_b, W, Q, A, k):
            data, indices, indptr = X
            dsq = 0.0
            dab = 0.0
            moved = 0.0
            lo, hi = row_span(indptr, i)
            for jj in range(lo, hi):
                if data[jj] != 0:
                    a, b_, c = penalize_l1(column(indices, jj), u, scale, avg_b, W, Q, A, k)
                    dsq += a
                    dab += b_
                    moved += c
            return dsq, dab, moved

    return impl


def average_row(average, X, i, c, avg_coef, k, avg_b):
    """The lazy-average correction of a direct row update (``avg -= AVG_B *
    delta``); nothing when averaging is off."""


@overload(average_row, jit_options=_CALL)
def _average_row(average, X, i, c, avg_coef, k, avg_b):
    if isinstance(average, types.NoneType):
        return lambda average, X, i, c, avg_coef, k, avg_b: 0.0

    def impl(average, X, i, c, avg_coef, k, avg_b):
        if avg_b != 0.0:
            return row_axpy(X, i, -avg_b * c, avg_coef, k)
        return 0.0

    return impl


def accumulate_average(average, clock, intercept, avg_intercept, t, m, scale, weight):
    """Step: fold this batch's weights into the running average with weight
    ``weight`` (lazily for the weights, explicitly for the intercepts);
    nothing when off."""


@overload(accumulate_average, jit_options=_JIT)
def _accumulate_average(average, clock, intercept, avg_intercept, t, m, scale, weight):
    if isinstance(average, types.NoneType):
        return lambda average, clock, intercept, avg_intercept, t, m, scale, weight: None

    def impl(average, clock, intercept, avg_intercept, t, m, scale, weight):
        if t + m - 1 >= average:
            clock[AVG_B], clock[AVG_N], inv = average_step(clock[AVG_B], clock[AVG_N], scale,
                                                           weight)
            for k in range(intercept.shape[0]):
                avg_intercept[k] = average_intercept(avg_intercept[k], intercept[k], inv)

    return impl


@numba.njit(**_JIT)
def average_step(avg_b, avg_n, scale, weight):
    """A step joins the average with weight ``weight``: the lazy sum's
    coefficient ``AVG_B`` and the count ``AVG_N`` after it, and the step's
    share of the total, ``(avg_b, avg_n, inv)``."""
    avg_b += weight * scale
    avg_n += weight
    return avg_b, avg_n, weight / avg_n


@numba.njit(**_JIT)
def average_intercept(avg, intercept, inv):
    """The running average ``avg`` of an intercept after a step that joins it
    with weight ``inv`` (its share of the total weight averaged)."""
    return avg + (intercept - avg) * inv


def direct_step(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                average, dense_grad, norms):
    """Step 3 without clipping or momentum: ``W[k] += step * derivs[r, k] *
    X[row r]`` over the batch, each output's ``norms`` kept up to date.
    Returns the sum of the changes to the averaging sums.

    Sparse rows, and per-sample steps, update the weights row by row
    (:func:`step_rows`: each touches its own columns). A dense minibatch
    first sums its rows' contributions into one gradient vector
    (:func:`step_dense_batch`).

    Only the row-by-row step without averaging is inlined into the pass,
    where it runs once per row at batch_size=1 (see ``_INLINE``). The other
    cases stay calls: inlined, their products could be regrouped with the
    caller's under ``reassoc``, and that did change the results of averaged
    runs and of dense minibatches (the cases inlined here keep them).
    """


def dense_gradient_buffer(X, per_sample, n_out):
    """The gradient vector a dense minibatch sums into (empty otherwise)."""


def _dense_batches(X, per_sample):
    return _dense(X) and not isinstance(per_sample, types.NoneType)


@overload(dense_gradient_buffer, jit_options=_JIT)
def _dense_gradient_buffer(X, per_sample, n_out):
    if _dense_batches(X, per_sample):
        return lambda X, per_sample, n_out: np.zeros((n_out, X[0].shape[1]))
    return lambda X, per_sample, n_out: np.zeros((n_out, 0))


def _step_rows(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
               average, dense_grad, norms):
    moved = 0.0
    for r in range(m):
        i = order[start + r]
        for k in range(coef.shape[0]):
            c = step * derivs[r, k]
            if c != 0.0:
                d_sq, d_ab = row_update(X, i, c, coef, k, l1)
                norms[k, SQ] += d_sq
                norms[k, ABS] += d_ab
                moved += average_row(average, X, i, c, avg_coef, k, avg_b)
    return moved


def step_rows(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
              average, dense_grad, norms):
    """:func:`direct_step` row by row, as a call."""


@overload(step_rows, jit_options=_CALL)
def _step_rows_call(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                    average, dense_grad, norms):
    return _step_rows


def step_dense_batch(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                     average, dense_grad, norms):
    """:func:`direct_step` of a dense minibatch, as a call: sums its rows'
    contributions into one gradient vector, reading each row from cache
    where its score was just computed, and adds it to the weights once."""


@overload(step_dense_batch, jit_options=_CALL)
def _step_dense_batch(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                      average, dense_grad, norms):
    track_abs = not isinstance(l1, types.NoneType)
    averaging = not isinstance(average, types.NoneType)

    def impl(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
             average, dense_grad, norms):
        x = X[0]
        d = x.shape[1]
        moved = 0.0
        for k in range(coef.shape[0]):
            dsq = 0.0
            dab = 0.0
            for j in range(d):
                dense_grad[k, j] = 0.0
            for r in range(m):
                c = step * derivs[r, k]
                if c != 0.0:
                    i = order[start + r]
                    for j in range(d):
                        dense_grad[k, j] += c * x[i, j]
            for j in range(d):
                delta = dense_grad[k, j]
                old = coef[k, j]
                new = old + delta
                coef[k, j] = new
                dsq += new * new - old * old
                if track_abs:
                    dab += abs(new) - abs(old)
                if averaging and avg_b != 0.0:
                    avg_coef[k, j] -= avg_b * delta
                    moved += abs(avg_b * delta)
            norms[k, SQ] += dsq
            norms[k, ABS] += dab
        return moved

    return impl


@overload(direct_step, jit_options=_INLINE)
def _direct_step(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                 average, dense_grad, norms):
    if _dense_batches(X, per_sample):
        return (lambda X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                average, dense_grad, norms:
                step_dense_batch(X, per_sample, order, start, m, derivs, step, coef, avg_coef,
                                 avg_b, l1, average, dense_grad, norms))
    if not isinstance(average, types.NoneType):
        return (lambda X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b, l1,
                average, dense_grad, norms:
                step_rows(X, per_sample, order, start, m, derivs, step, coef, avg_coef, avg_b,
                          l1, average, dense_grad, norms))
    return _step_rows


def _on(rule, *names):
    """Compile-time: whether any of the rule's steps ``names`` is on."""
    field_types = dict(zip(rule.fields, rule.types, strict=True))
    return any(not isinstance(field_types[name], types.NoneType) for name in names)


def _tracks_columns(rule):
    """Compile-time: whether batches list the columns they touch (for the
    gradient buffer of clipping and momentum, or for L1)."""
    return _on(rule, "clip_value", "clip_norm", "momentum", "l1")


def _buffers_gradient(rule):
    """Compile-time: whether a batch forms its gradient before stepping."""
    return _on(rule, "clip_value", "clip_norm", "momentum")


def batch_length(per_sample, batch, remaining):
    """Rows in the next batch: 1 when ``per_sample`` is None (a compile-time
    constant, so the batch loops of per-sample SGD fold away), else
    ``min(batch, remaining)``."""


@overload(batch_length, jit_options=_JIT)
def _batch_length(per_sample, batch, remaining):
    if isinstance(per_sample, types.NoneType):
        return lambda per_sample, batch, remaining: 1
    return lambda per_sample, batch, remaining: min(batch, remaining)


def rule_flags(rule):
    """``(tracks_columns, buffers_gradient)`` as compile-time constants."""


@overload(rule_flags, jit_options=_JIT)
def _rule_flags(rule):
    track, buffered = _tracks_columns(rule), _buffers_gradient(rule)
    return lambda rule: (track, buffered)


# ------------------------------------------------------------------- the pass


@numba.njit(**_JIT)
def sgd_pass(X, Y, sample_weight, order, shuffle_seed, state, hyper, loss, loss_params, rule,
             journal, batch_cap, report, per_sample, out_weight, objective):
    """Run one pass of minibatch SGD over the rows ``order`` (in that order).

    Parameters
    ----------
    X : tuple
        Dataset tuple, dense ``(X,)`` or CSR ``(data, indices, indptr)``.
    Y : ndarray of shape (n_samples, n_outputs) or (n_samples, 1), float64
        Target of each output (+1/-1 for one-vs-rest classification), or,
        for a multiclass loss, the class index in column 0.
    sample_weight : ndarray of shape (n_samples,), float64
        Weight of each row (class weights included).
    order : ndarray of int64
        Rows to visit, in order; consecutive runs of ``batch_size`` form the
        minibatches. Shuffled in place first when ``shuffle_seed >= 0``.
    shuffle_seed : int
        Seed of this state's shuffles (with ``clock[PASSES]``), or -1.
    state : tuple of ndarray
        ``(coef, intercept, avg_coef, avg_intercept, l1_applied, velocity,
        velocity_b, clock, norms, slot)``, updated in place (module
        docstring); ``slot`` is scratch, all -1 between batches.
    hyper : ndarray of float64
        Run-time hyper-parameters, slots ``HYPER_FIELDS``.
    loss : BuiltinLoss or tuple of two C function pointers
    loss_params : tuple of float
    rule : Rule
        The optional steps, each None when off (skgd._engine.Rule).
    journal : tuple of ndarray or None
        The undo journal of a CSR stream (skgd._engine), or None.
    batch_cap : int
        At least the number of distinct columns any one batch touches.
    report : ndarray of shape (5,), float64
        Where a user's loss reports its first non-finite value (see
        :func:`loss_derivatives`).
    per_sample : None or bool
        None when ``batch_size`` is 1: the pass is compiled for one row per
        step.
    out_weight : ndarray of shape (n_outputs, 2) or None
        Weights of each output's derivative on negative and positive targets
        (see :func:`output_weight`), or None for all ones.
    objective : ndarray of shape (3, n_outputs), float64
        Row 0 is set to the sums over the rows of each output's loss plus
        penalty, at the weights before that row's minibatch step, row 1 to
        the rows' total weight (row 2 is scratch). With
        ``hyper[H_WEIGHTED_OBJECTIVE]`` a row counts with its sample weight
        times its output weight, else with 1 (scikit-learn's tol rule
        watches that unweighted sum). A multiclass loss adds its loss to
        output 0, each output's penalty to its own.
    """
    (coef, intercept, avg_coef, avg_intercept, l1_applied, velocity, velocity_b, clock, norms,
     slot) = state
    n_out = coef.shape[0]
    n_rows = order.shape[0]
    batch = np.int64(hyper[H_BATCH_SIZE])
    fit_intercept = hyper[H_FIT_INTERCEPT] != 0.0
    prefetch_w = hyper[H_PREFETCH_WEIGHTS] != 0.0
    prefetch_x = hyper[H_PREFETCH_ROWS] != 0.0
    track, buffered = rule_flags(rule)
    # a per-sample step without a gradient buffer penalizes its row's
    # columns directly: no marking (see row_l1_penalty)
    row_l1 = per_sample is None and not buffered

    derivs = np.empty((min(batch, n_rows), n_out))
    scores = np.empty(n_out)
    row_derivs = np.empty(n_out)
    values = np.empty(n_out)
    passive_aggressive = PA1 <= hyper[H_SCHEDULE] <= PA2
    auto = hyper[H_SCHEDULE] == AUTO
    width = batch_cap if track and not row_l1 else 0
    grad = np.zeros((n_out, width if buffered else 0))
    grad_b = np.zeros(n_out)
    touched = np.empty(width, dtype=np.int64)
    dense_grad = dense_gradient_buffer(X, per_sample, n_out)

    if shuffle_seed >= 0:
        shuffle_in_place(order, shuffle_seed, np.int64(clock[PASSES]))
    clock[PASSES] += 1.0
    weighted_objective = hyper[H_WEIGHTED_OBJECTIVE] != 0.0
    objective[:, :] = 0.0

    for start in range(0, n_rows, batch):
        m = batch_length(per_sample, batch, n_rows - start)
        t = clock[T]
        eta, eta_b = step_sizes(hyper, t, m)

        # 1. Loss derivatives at the current weights.
        scale = clock[SCALE]
        grad_sq = 0.0
        for r in range(m):
            ahead = start + r + LOOKAHEAD
            if prefetch_x and ahead < n_rows:
                a = order[ahead]
                prefetch_row(X, a)
                prefetch(sample_weight, a)
                prefetch_2d(Y, a, 0)
            ahead = start + r + WEIGHTS_AHEAD
            if prefetch_w and ahead < n_rows:
                prefetch_weights(X, order[ahead], coef)
            i = order[start + r]
            journal_row(journal, X, i, coef, avg_coef, l1_applied)
            for k in range(n_out):
                if output_stopped(out_weight, Y, k):
                    scores[k] = 0.0  # (its derivative's weight is 0)
                else:
                    scores[k] = scale * row_dot(X, i, coef, k) + intercept[k]
            loss_derivatives(loss, loss_params, scores, Y, i, row_derivs, values, report)
            sw = sample_weight[i]
            # No clamp on the derivatives (scikit-learn clamps at 1e12): a
            # diverging run must overflow and be reported, not stay finite
            # but huge.
            for k in range(n_out):
                weight = sw * output_weight(out_weight, Y, i, k)
                counted = weight if weighted_objective else 1.0
                count_row(per_sample, objective, k, counted, values[k], rule.l1, hyper, scale,
                          norms)
                derivs[r, k] = weight * row_derivs[k]
                grad_sq += derivs[r, k] * derivs[r, k]
            if passive_aggressive:
                # the row's own step tau replaces the batch's eta
                sq_norm = row_sqnorm(X, i)
                for k in range(n_out):
                    tau = passive_aggressive_step(hyper[H_SCHEDULE], hyper[H_ETA0], values[k],
                                                  sq_norm)
                    derivs[r, k] *= tau / eta

        add_penalties(per_sample, objective, rule.l1, hyper, scale, norms)

        # 'auto' measures its step on the batch's gradients (DoG)
        rate = -1.0
        full_eta = eta
        if auto:
            if clock[BOUND] == 0.0:
                clock[BOUND] = weight_norm_bound(hyper, objective)
            clock[GRAD_SQ] += grad_sq
            rate = auto_rate(clock, hyper, norms, intercept)
            eta, eta_b, full_eta = auto_step_sizes(hyper, t, m, batch, rate)
        # (a short batch takes a full one's momentum: see auto_step_sizes)
        mu = momentum_coefficient(rule.momentum, auto, full_eta, batch * rate)

        n_touched = 0
        if track and not row_l1:
            for r in range(m):
                n_touched = mark_row(X, order[start + r], slot, touched, n_touched)

        # 2. The batch's mean gradient, clipped (when a step buffers it).
        factor = 1.0
        if buffered:
            for r in range(m):
                i = order[start + r]
                for k in range(n_out):
                    if derivs[r, k] != 0.0:
                        row_gather_axpy(X, i, derivs[r, k] / m, slot, grad, k)
            for k in range(n_out):
                s = 0.0
                for r in range(m):
                    s += derivs[r, k]
                grad_b[k] = s / m if fit_intercept else 0.0
            clip_by_value(grad, grad_b, n_touched, rule.clip_value)
            factor = clip_by_global_norm(grad, grad_b, n_touched, rule.clip_norm)
            if factor < 1.0:
                if auto:
                    eta, eta_b, _ = auto_step_sizes(hyper, t, m, batch, rate, factor)
                else:
                    eta, eta_b = step_sizes(hyper, t, m, factor, rate)

        # 3. L2 weight decay. 'auto''s decay keeps pace with its momentum's
        # long-run step eta / (1 - mu): its steps then still settle at the
        # penalised optimum (decay at eta alone would weaken the penalty
        # by the factor 1 - mu there).
        if l2_decay(clock, hyper, eta / (1.0 - mu) if auto else eta, journal):
            fold_scale(coef, clock, avg_coef, norms)
        scale = clock[SCALE]

        # 4. The gradient step.
        if buffered:
            apply_gradient(rule.momentum, mu, coef, intercept, avg_coef, velocity, velocity_b,
                           grad, grad_b, touched, n_touched, slot, eta * factor,
                           eta_b * factor, clock, norms)
            for k in range(n_out):
                for s in range(n_touched):
                    grad[k, s] = 0.0
        else:
            clock[AVG_CHECK] += direct_step(X, per_sample, order, start, m, derivs,
                                            -eta / (m * scale), coef, avg_coef, clock[AVG_B],
                                            rule.l1, rule.average, dense_grad, norms)
            if fit_intercept:
                for k in range(n_out):
                    s = 0.0
                    for r in range(m):
                        s += derivs[r, k]
                    intercept[k] -= eta_b / m * s

        # 5. L1: the cumulative penalty on the weights this batch touched.
        if row_l1:
            # ('auto' reads every output's norms: the stopped ones' too)
            row_l1_penalties(rule.l1, X, order[start], coef, l1_applied, avg_coef, clock, norms,
                             eta, out_weight, Y, not auto)
        else:
            l1_penalty(rule.l1, coef, l1_applied, avg_coef, clock, norms, touched, n_touched,
                       eta)

        if track and not row_l1:
            for s in range(n_touched):
                slot[touched[s]] = -1

        # 6. Averaging: fold this step's weights into the running sum.
        # 'auto' weighs step s by s^2 (polynomial-decay averaging): the
        # average forgets the far-off start while it keeps the noise down
        accumulate_average(rule.average, clock, intercept, avg_intercept, t, m, scale,
                           (t + m - 1.0) ** 2 if auto else 1.0)

        clock[T] = t + m
