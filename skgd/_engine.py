"""Python side of the engine: its options, one pass, and the pass split
across threads.

The estimators never touch the compiled kernel directly; they hold an
:class:`~skgd._state.EngineState`, build a :class:`Hyper` and a
:class:`Rule` once per call, prepare a :class:`Pass` and
:meth:`~Pass.run` it once per epoch or chunk.

A pass changes the state in place. What a failed or interrupted call needs
to put back is recorded by an :class:`~skgd._undo.Undo`. (The state and the
undo are named here too: ``skgd._engine.EngineState`` is the name a saved
model keeps.)
"""

from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from . import _threads
from ._dispatch import _ENTRY_POINTS, _call_kernel, _type_key
from ._plain_pass import plain_pass
from ._state import (  # noqa: F401 - EngineState: named here too
    _PER_FEATURE,
    _SMALL_PER_OUTPUT,
    EngineState,
    _dot,
    padded_copy,
)
from ._undo import Undo  # noqa: F401 - named here too
from .losses import quiet_experimental
from .schedules import get_schedule

# Named on the Python side for readability; the kernel gets it as an array.
Hyper = namedtuple("Hyper", K.HYPER_FIELDS)

#: The optional steps of the update rule. Each is None when off, and the
#: pass is compiled without it (see skgd._kernels).
Rule = namedtuple("Rule", "clip_value clip_norm momentum l1 average")


def make_hyper(*, schedule, alpha, eta0, power_t, optimal_init, penalty, l1_ratio,
               fit_intercept, batch_size, average, dtype, curvature, per_sample_floor,
               smoothness, weighted_objective=False, intercept_decay=1.0, row_sq=0.0,
               online=False):
    """Build the compiled kernel's run-time hyper-parameters.

    ``schedule``: a :class:`~skgd.schedules.Schedule`, its name or its code;
    it sets its own fields (:meth:`~skgd.schedules.Schedule.hyper`), what
    the caps read (:meth:`~skgd.schedules.Schedule.caps`) and the intercepts'
    step factor. ``curvature`` is the loss's bound
    on its second derivative (None: no step cap) and ``smoothness`` the
    data's ``Smoothness`` tuple. The caps (skgd._smoothness): with
    ``per_sample_floor`` the weights and the intercept are capped by their
    own block's smoothness, otherwise both by the bound on the joint one.
    ``intercept_decay``: the data's factor of the intercepts' step;
    ``row_sq``: the mean ``|x|^2`` of the data seen.
    """
    schedule = get_schedule(schedule)
    l2, _ = penalty_strengths(penalty, alpha, l1_ratio)
    beta, cap_floor, smoothness = schedule.caps(curvature, per_sample_floor, smoothness, row_sq)
    lam_w, l_max_w, lam_b, l_max_b = smoothness
    if not per_sample_floor:
        lam_w, l_max_w = lam_b, l_max_b = lam_w + lam_b, l_max_w + l_max_b
    if average:  # (as training uses it: Schedule.average)
        # The lazy average cancels terms of size 1 / scale_min; keep that
        # within the precision of the weights' dtype.
        scale_min = 1e-6 if dtype == np.float64 else 1e-3
    else:
        scale_min = 1e-9
    return Hyper(
        **schedule.hyper(alpha=alpha, eta0=eta0, power_t=power_t, optimal_init=optimal_init),
        l2=l2,
        fit_intercept=float(fit_intercept),
        batch_size=batch_size,
        scale_min=scale_min,
        curv_full=beta * lam_w,
        curv_max=beta * l_max_w,
        curv_b_full=beta * lam_b,
        curv_b_max=beta * l_max_b,
        cap_floor=float(cap_floor),
        prefetch_weights=0.0,  # set by the Pass, which knows the model's size
        prefetch_rows=0.0,  # and the data's
        # the objective weighs rows by sample and class weight, or (scikit-
        # learn's tol rule) counts every row alike
        weighted_objective=float(weighted_objective),
        intercept_decay=schedule.intercept_decay(intercept_decay),
        row_sq=row_sq + float(fit_intercept),
        online=float(online),
    )


# Data with fewer non-zeros than this is sparse: its intercepts step by
# SPARSE_INTERCEPT_DECAY times the weights' rate (scikit-learn's factor).
SPARSE_DENSITY = 0.2
SPARSE_INTERCEPT_DECAY = 0.01
_DENSITY_SAMPLE = 500


def sparse_intercept_decay(X):
    """The factor of the intercepts' step for data like ``X``.

    As scikit-learn damps the intercept's step by 0.01 on sparse input (the
    intercept is in every row, a text feature in few: at the weights' rate,
    the intercept of a stream of text swings far on its first chunk), but
    decided by the data's density, not its container, so that dense and
    sparse copies of the same data train the same model. The density of
    dense X comes from at most 500 evenly spaced rows.
    """
    n, d = X.shape
    if n == 0 or d == 0:
        return 1.0
    if sp.issparse(X):
        density = X.nnz / (n * d)
    else:
        sample = X[::max(1, n // _DENSITY_SAMPLE)]
        density = np.count_nonzero(sample) / sample.size
    return SPARSE_INTERCEPT_DECAY if density < SPARSE_DENSITY else 1.0


def penalty_strengths(penalty, alpha, l1_ratio):
    """``(l2, l1)`` strengths of a penalty name."""
    if penalty == "l2":
        return alpha, 0.0
    if penalty == "l1":
        return 0.0, alpha
    if penalty == "elasticnet":
        return alpha * (1.0 - l1_ratio), alpha * l1_ratio
    return 0.0, 0.0


def make_rule(*, clip_value, clip_norm, momentum, nesterov, l1, average):
    """The :class:`Rule` of these options (plain Python floats, or None)."""
    return Rule(
        clip_value=float(clip_value) if clip_value else None,
        clip_norm=float(clip_norm) if clip_norm else None,
        momentum=(float(momentum), bool(nesterov)) if momentum > 0 else None,
        l1=float(l1) if l1 > 0 else None,
        average=float(average) if average else None,
    )


_BUILTIN_BY_FUNCTIONS = {(value, deriv): name
                         for name, (value, deriv, _) in K.BUILTIN_LOSSES.items()}


def loss_spec(loss):
    """How the kernel calls ``loss``: a :class:`~skgd._kernels.BuiltinLoss`
    token when its functions are a built-in loss's (inlined), otherwise its
    compiled C function pointers."""
    cls = type(loss)
    name = _BUILTIN_BY_FUNCTIONS.get((cls.loss, cls.dloss))
    if name is not None:
        return K.BuiltinLoss(name)
    return loss.compiled()


def narrow_indices(X):
    """CSR ``X`` with int32 indices where they fit (what
    ``load_svmlight_file`` returns has int64): every epoch then reads 4 bytes
    less per non-zero, for one pass over the indices. The data is not
    copied."""
    if (not sp.issparse(X) or X.indices.dtype == np.int32
            or max(X.shape[1], X.indices.shape[0]) >= np.iinfo(np.int32).max):
        return X
    return sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)),
                         shape=X.shape, copy=False)


def as_dataset(X):
    """The kernel's dataset tuple for a validated dense or CSR matrix."""
    if sp.issparse(X):
        return (X.data, X.indices, X.indptr)
    return (X,)


# ----------------------------------------------------------------- undo
# ----------------------------------------------------------------- a pass


def batch_capacity(X, rows, batch_size):
    """At least the number of distinct columns one batch of ``X[rows]`` touches."""
    n_features = X.shape[1]
    if not sp.issparse(X):
        return n_features
    lengths = np.diff(X.indptr)
    if rows.size != X.shape[0]:
        lengths = lengths[rows]
    longest = int(lengths.max(initial=0))
    return max(1, min(n_features, batch_size * longest, int(lengths.sum())))


def _plain(state, hyper, rule, loss_spec, journal):
    """Whether :func:`~skgd._plain_pass.plain_pass` runs this pass: one
    output, a scalar loss, no journal, no step that buffers the gradient,
    and a schedule other than 'auto' and passive-aggressive."""
    if (state.n_outputs != 1 or journal is not None or rule.clip_value is not None
            or rule.clip_norm is not None or rule.momentum is not None):
        return False
    if not get_schedule(hyper[K.H_SCHEDULE]).plain_pass:
        return False
    if isinstance(loss_spec, K.BuiltinLoss):
        return not K.BUILTIN_LOSSES[loss_spec.name][2]
    with quiet_experimental():
        return not K._is_multiclass(numba.typeof(loss_spec))


_PREFETCH_FROM = 1 << 20  # bytes of weights or of rows (a core's L2 cache, about)


def _data_bytes(X, rows):
    """Bytes a pass over ``X[rows]`` reads of X (values and column indices)."""
    if sp.issparse(X):
        per_entry = X.data.itemsize + X.indices.itemsize
        return per_entry * X.nnz * rows.size / max(X.shape[0], 1)
    return X.itemsize * X.shape[1] * rows.size


class Pass:
    """One compiled pass over ``X[rows]``, prepared once and run per epoch.

    Preparing checks the state against the input and the rule (cheaply,
    so the compiled pass never writes outside an array it was given) and
    works out everything an epoch does not change: the per-epoch cost in
    Python is a few microseconds.

    The state must already :meth:`~EngineState.conform` to ``rule``.
    ``out_weight`` (see ``skgd._kernels.output_weight``) may be changed in
    place between runs: that is how a one-vs-rest class stops. ``part``:
    a part of a :class:`SplitPass`, which runs the general compiled pass
    (the code the whole pass runs) and writes its objective where no other
    thread writes (see :func:`padded_copy`).

    ``threads``: how many threads the pass may use (``n_jobs``); the plain
    pass computes a long batch's row scores on that many (see
    :func:`skgd._threads.batch_threads`), with the model of one thread.

    A pass is a context manager, as :class:`SplitPass` (which must let its
    threads go): ``with prepare_pass(...) as prepared``.
    """

    def __init__(self, state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                 shuffle, journal=None, out_weight=None, verbose=False, part=False, threads=1):
        _check_layout(state, X, Y, sample_weight, rows, rule, out_weight)
        self.state = state
        self.rows = rows
        self.shuffle = shuffle
        self.order = rows.copy() if shuffle else rows
        data = as_dataset(X)
        cap = batch_capacity(X, rows, int(hyper.batch_size))
        self.report = np.zeros(5)
        hyper = np.asarray(hyper, dtype=np.float64)
        # Prefetching the weights of rows ahead pays once they no longer fit
        # in the CPU's own caches (a wide model); below that it only costs.
        hyper[K.H_PREFETCH_WEIGHTS] = float(sp.issparse(X) and state.coef.nbytes > _PREFETCH_FROM)
        # Rows visited in random order miss the cache once the data outgrows
        # it (fetching them ahead halves an adult epoch); data that fits
        # only pays for the hints (SMS Spam TF-IDF, 0.9 MB: 4-14 % of an epoch).
        hyper[K.H_PREFETCH_ROWS] = float(_data_bytes(X, rows) > _PREFETCH_FROM)
        per_sample = None if hyper[K.H_BATCH_SIZE] == 1 else False
        self.out_weight = out_weight
        self.verbose = verbose
        self.objective = np.zeros((3, state.n_outputs))
        if part:
            self.objective = padded_copy(self.objective)
        seed = state.shuffle_seed if shuffle else -1
        # (a part of a split pass is on a thread already; an undo journal, 'auto'
        # and passive-aggressive steps read a batch's rows in the per-row loop)
        self.threads = 1
        if not (part or journal is not None
                or not get_schedule(hyper[K.H_SCHEDULE]).plain_pass):
            self.threads = _threads.batch_threads(X, rows, int(hyper[K.H_BATCH_SIZE]), threads,
                                         state.n_outputs)
        rows_per_batch = min(int(hyper[K.H_BATCH_SIZE]), rows.size)
        if not part and _plain(state, hyper, rule, loss_spec, journal):
            self.kernel = plain_pass
            if out_weight is None:
                out_weight = np.ones((1, 2))
            row_out = None
            if self.threads > 1:
                row_out = np.empty((rows_per_batch, 3))
            self.args = [data, Y, sample_weight, self.order, seed, state.arrays(), hyper,
                         loss_spec, loss_params,
                         np.inf if rule.average is None else rule.average,
                         0.0 if rule.l1 is None else rule.l1, cap, self.report, per_sample,
                         out_weight, self.objective, row_out]
            self.key = ("plain",) + _type_key(data + (Y, sample_weight, self.order), state.coef,
                                              loss_spec, loss_params, None, None) + (
                per_sample is None, row_out is None)
        else:
            self.kernel = K.sgd_pass
            row_bufs = None
            if self.threads > 1:  # each row's scores, derivatives and values
                row_bufs = tuple(np.empty((rows_per_batch, state.n_outputs)) for _ in range(3))
            self.args = [data, Y, sample_weight, self.order, seed, state.arrays(), hyper,
                         loss_spec, loss_params, rule, journal, cap, self.report, per_sample,
                         out_weight, self.objective, row_bufs]
            self.key = _type_key(data + (Y, sample_weight, self.order), state.coef, loss_spec,
                                 loss_params, rule, journal) + (per_sample is None,
                                                                out_weight is None,
                                                                row_bufs is None)

    def set_eta0(self, eta0):
        """Lower the base rate (the 'adaptive' schedule)."""
        self.args[6][K.H_ETA0] = eta0

    def run(self):
        """Run the pass (the one place training enters the compiled code);
        returns a new array of shape (2, n_outputs): each output's sum over
        the rows of loss plus penalty, and the rows' total weight in it (the
        ``objective`` of ``sgd_pass``)."""
        if self.shuffle:  # each pass shuffles the rows afresh, from (seed, pass)
            self.order[:] = self.rows
        if self.threads > 1:
            with _threads.numba_threads(self.threads):
                _call_kernel(self.kernel, tuple(self.args), self.key, self.verbose)
        else:
            _call_kernel(self.kernel, tuple(self.args), self.key, self.verbose)
        self.state.version += 1
        return self.objective[:2].copy()

    def loss_failure(self):
        """``(score, target, output)`` where a user's loss first gave a
        non-finite value or raised, or None."""
        if self.report[0] == 0.0:
            return None
        return float(self.report[1]), float(self.report[2]), int(self.report[3])

    def failed_at(self):
        """Position in this pass's order of the row of :meth:`loss_failure`
        (O(rows), only after a failure)."""
        return int(np.flatnonzero(self.order == int(self.report[4]))[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def prepare_pass(state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                 shuffle, *, parts=None, journals=None, out_weight=None, verbose=False,
                 threads=1):
    """A :class:`Pass`, or with ``parts`` (slices of the outputs) a
    :class:`SplitPass` that runs each part on its own thread; ``journals``:
    the undo journals of the parts (see :class:`Undo`), or None;
    ``threads``: ``n_jobs`` (see :func:`skgd._threads.batch_threads`)."""
    if parts is None:
        return Pass(state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                    shuffle, journal=journals and journals[0], out_weight=out_weight,
                    verbose=verbose, threads=threads)
    return SplitPass(state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                     shuffle, parts, journals=journals, out_weight=out_weight, verbose=verbose)


class SplitPass:
    """A :class:`Pass` whose outputs are split into parts, each run by its
    own thread over the same rows (the compiled pass releases the GIL).

    Each part trains its outputs' rows of the state (see
    :meth:`EngineState.part`: views, or copies where threads would write
    the same cache lines) with the code and the order of rows the whole
    pass would use; where the outputs' steps are independent (see
    :func:`skgd._threads.splittable`), each output's numbers are then those of the
    whole pass, bit for bit. After each run the parts' clocks, which moved
    alike, become the state's; only ``clock[AVG_CHECK]``, a sum over the
    outputs that is only ever tested for finiteness, adds up the parts'
    growths in another order. The objective's columns are the parts' side
    by side, and a user loss's failure is the one the whole pass would
    have met first.

    A run returns once every thread has finished, whatever failed: nothing
    runs on after it (an exception from a thread is raised in the caller's
    thread). The threads live from the first run to :meth:`close` (the
    end of the ``with`` block).
    """

    def __init__(self, state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                 shuffle, parts, journals=None, out_weight=None, verbose=False):
        state.arrays()  # C-ordered and writable: the parts' views must be too
        self.state = state
        self.slices = parts
        # Dense rows write every weight of their outputs, and the parts' first
        # and last rows of weights share a cache line: copies of their own.
        # (Sparse rows rarely write the same line; their CSR streams journal.)
        self.private = _SMALL_PER_OUTPUT + (() if sp.issparse(X) else _PER_FEATURE)
        self.parts = [state.part(outputs, j, self.private) for j, outputs in enumerate(parts)]
        self.passes = [
            Pass(part, X, np.ascontiguousarray(Y[:, outputs]), sample_weight, rows, hyper,
                 rule, loss_spec, loss_params, shuffle,
                 journal=None if journals is None else journals[j],
                 out_weight=None if out_weight is None else out_weight[outputs],
                 verbose=verbose, part=True)
            for j, (outputs, part) in enumerate(zip(parts, self.parts, strict=True))]
        self._pool = None

    def set_eta0(self, eta0):
        """Lower the base rate of every part (see :meth:`Pass.set_eta0`)."""
        for prepared in self.passes:
            prepared.set_eta0(eta0)

    def run(self):
        """Run every part; returns what :meth:`Pass.run` returns for the
        whole state."""
        self._copy(into_parts=True)
        first, *others = self.passes
        if first.key not in _ENTRY_POINTS:
            # compile (or load) once, on this thread: the parts one by one
            sums = [prepared.run() for prepared in self.passes]
        else:
            futures = [self._threads().submit(prepared.run) for prepared in others]
            try:
                sums = [first.run()]
            finally:
                _join(futures)
            sums += [future.result() for future in futures]
        self._copy(into_parts=False)
        self.state.join_clocks(self.parts)
        self.state.version += 1
        return np.concatenate(sums, axis=1)

    def _copy(self, into_parts):
        """Copy the state's values into the parts' private arrays and clocks
        (before a run), or the parts' private arrays back (after it)."""
        state = self.state
        for outputs, part in zip(self.slices, self.parts, strict=True):
            if into_parts:
                part.clock[:] = state.clock
            for name in self.private:
                whole, own = getattr(state, name)[outputs], getattr(part, name)
                if not own.size:
                    continue
                if into_parts:
                    own[...] = whole
                else:
                    whole[...] = own

    def _threads(self):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self.passes) - 1, thread_name_prefix="skgd")
        return self._pool

    def loss_failure(self):
        """What :meth:`Pass.loss_failure` says of the whole pass: of the
        parts' first failures, the one on the earliest row (then the lowest
        output)."""
        failures = []
        for outputs, prepared in zip(self.slices, self.passes, strict=True):
            failure = prepared.loss_failure()
            if failure is not None:
                score, target, k = failure
                failures.append((prepared.failed_at(), outputs.start + k, score, target))
        if not failures:
            return None
        _, k, score, target = min(failures)
        return score, target, k

    def close(self):
        """Let the threads go (they are idle: every run waits for them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _join(futures):
    """Wait until every future is done, through an interrupt too (the state
    must not be read or undone while a thread still writes it); then raise
    the interrupt."""
    pending, interrupt = set(futures), None
    while pending:
        try:
            _, pending = wait(pending)
        except BaseException as exc:  # KeyboardInterrupt while waiting
            interrupt = interrupt or exc
    if interrupt is not None:
        raise interrupt



_LAYOUT_ARRAYS = ("intercept", "avg_coef", "avg_intercept", "l1_applied", "velocity",
                  "velocity_b", "clock", "norms")


def _check_layout(state, X, Y, sample_weight, rows, rule, out_weight=None):
    """The promises the compiled pass relies on, checked in O(outputs)."""
    n_out, n_features = state.coef.shape
    full = (n_out, n_features)
    problems = []
    if out_weight is not None and not (
            out_weight.shape == (n_out, 2) and out_weight.dtype == np.float64
            and out_weight.flags.c_contiguous):
        problems.append(f"output weights of shape {out_weight.shape}, not {(n_out, 2)}")
    if X.shape[1] != n_features:
        problems.append(f"X has {X.shape[1]} columns, the model {n_features}")
    if Y.shape[0] != X.shape[0] or sample_weight.shape[0] != X.shape[0]:
        problems.append("targets or weights do not match the rows of X")
    if Y.shape[1] not in (1, n_out):
        problems.append(f"targets have {Y.shape[1]} columns for {n_out} outputs")
    if rows.size and (rows[0] < 0 or rows[-1] >= X.shape[0]):
        problems.append("rows out of range")
    average, l1, momentum = (rule.average is not None, rule.l1 is not None,
                             rule.momentum is not None)
    expected = (
        (n_out,),  # intercept
        full if average else (0, 0),  # avg_coef
        (n_out,) if average else (0,),  # avg_intercept
        full if l1 else (0, 0),  # l1_applied
        full if momentum else (0, 0),  # velocity
        (n_out,) if momentum else (0,),  # velocity_b
        (K.N_CLOCK,),  # clock
        (n_out, 2),  # norms
    )
    # one comparison of all the shapes (in the order of _LAYOUT_ARRAYS); the
    # names only to say which differ
    shapes = (state.intercept.shape, state.avg_coef.shape, state.avg_intercept.shape,
              state.l1_applied.shape, state.velocity.shape, state.velocity_b.shape,
              state.clock.shape, state.norms.shape)
    if shapes != expected:
        problems += [f"{name} has shape {shape}, not {want}" for name, shape, want
                     in zip(_LAYOUT_ARRAYS, shapes, expected, strict=True) if shape != want]
    if state.has_lazy_average() and rule.average is None:
        problems.append("a lazy averaging sum without averaging arrays")
    if problems:
        raise RuntimeError("skgd engine: state and input do not match ("
                           + "; ".join(problems) + "). This is a bug in skgd.")
