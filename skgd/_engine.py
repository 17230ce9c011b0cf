"""Python side of the engine: its state, its options, one pass, and undo.

The estimators never touch the compiled kernel directly; they hold an
:class:`EngineState`, build a :class:`Hyper` and a :class:`Rule` once per
call, prepare a :class:`Pass` and :meth:`~Pass.run` it once per epoch or
chunk.

A pass changes the state in place. What a failed or interrupted call needs
to put back is recorded by an :class:`Undo`: for CSR streams a journal in
which the pass records the weights of every row's columns before the row's
step (so a call costs what its data touches, however wide the model),
otherwise a copy of the arrays the pass may change (a dense row touches
every weight anyway).
"""

import logging
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
import scipy.sparse as sp

from . import _kernels as K
from ._plain_pass import plain_pass
from ._smoothness import NO_DATA
from .losses import quiet_experimental
from .schedules import AUTO, get_schedule, is_passive_aggressive

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


class EngineState:
    """Everything training needs to continue exactly where it stopped.

    Attributes
    ----------
    coef : ndarray of shape (n_outputs, n_features), dtype of X
        Unscaled weights; the real weights are ``clock[SCALE] * coef``.
    intercept : ndarray of shape (n_outputs,), float64
    avg_coef, avg_intercept : ndarray, float64
        Lazy running sums for averaged SGD (empty when averaging is off).
    l1_applied : ndarray, float64
        L1 penalty already applied to each weight (empty without L1).
    velocity, velocity_b : ndarray, float64
        Momentum of the weights and intercepts (empty without momentum).
    clock : ndarray of shape (N_CLOCK,), float64
        Scalar state; slots named in ``skgd._kernels``.
    norms : ndarray of shape (n_outputs, 2), float64
        Each output's ``sum(coef ** 2)`` and (while L1 is on) ``sum(|coef|)``,
        kept up to date by the kernel (unscaled coef).
    shuffle_seed : int
        Seed of the shuffles; each pass's order depends only on it and the
        pass number, so a resumed state shuffles as the original would.
    eta : float
        Current base learning rate (the ``adaptive`` schedule lowers it).
    version : int
        Counts the passes applied, to know when derived values are stale.

    Per-feature scratch (the kernel's column slots, the journal's marks)
    is kept in ``_scratch``; it is not part of the model (not pickled,
    rebuilt when needed).
    """

    def __init__(self, n_outputs, n_features, dtype, *, shuffle_seed, eta0, outputs=None,
                 coef_init=None, intercept_init=None):
        # what the outputs mean ('ovr', 'multinomial', 'regression'): a stream
        # may not switch it
        self.outputs = outputs
        self.coef = np.zeros((n_outputs, n_features), dtype=dtype)
        if coef_init is not None:
            self.coef[...] = coef_init
        self.intercept = np.zeros(n_outputs, dtype=np.float64)
        if intercept_init is not None:
            self.intercept[...] = intercept_init
        self.avg_coef = np.zeros((0, 0))
        self.avg_intercept = np.zeros(0)
        self.l1_applied = np.zeros((0, 0))
        self.velocity = np.zeros((0, 0))
        self.velocity_b = np.zeros(0)
        self.clock = np.zeros(K.N_CLOCK, dtype=np.float64)
        self.clock[K.T] = 1.0
        self.clock[K.SCALE] = 1.0
        # per output: sum(coef ** 2), sum(|coef|) (skgd._kernels.SQ, ABS)
        self.norms = np.zeros((n_outputs, 2), dtype=np.float64)
        if coef_init is not None:
            K.recount_norms(self.coef, self.norms)
        self.eta = float(eta0)
        self.shuffle_seed = int(shuffle_seed)  # with clock[PASSES], seeds each shuffle
        # the data's Smoothness, running max, as a plain tuple (what skops trusts)
        self.smoothness = tuple(NO_DATA)
        # factor of the intercepts' steps, from the first data seen (see
        # sparse_intercept_decay); None until then
        self.intercept_decay = None
        # mean s * |x|^2 of the data lam_w was last estimated on (None: none yet)
        self.lam_trace = None
        # mean |x|^2 of the data seen, running max ('auto' reads it)
        self.row_sq = 0.0
        self.version = 0
        self._scratch = {}

    # ----------------------------------------------------------- pickling

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_scratch", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._scratch = {}
        self.__dict__.setdefault("intercept_decay", 1.0)  # saved by skgd 0.1: none
        self.__dict__.setdefault("row_sq", 0.0)  # saved before 'auto'
        if "norms" not in state:  # saved by skgd 0.1: the norms were clock slots
            self.clock = self.clock[[K.T, K.SCALE, K.L1_U, K.AVG_B, K.AVG_N, K.PASSES, -1]]
            self.norms = np.zeros((self.coef.shape[0], 2))
            K.recount_norms(self.coef, self.norms)
        if self.clock.size < K.N_CLOCK:  # saved before 'auto': its slots start empty
            self.clock = np.concatenate([self.clock, np.zeros(K.N_CLOCK - self.clock.size)])

    def copy(self):
        """A deep copy (arrays copied, scratch not shared)."""
        new = EngineState.__new__(EngineState)
        new.__setstate__({name: value.copy() if isinstance(value, np.ndarray) else value
                          for name, value in self.__getstate__().items()})
        return new

    def restore(self, saved):
        """Become ``saved`` (a :meth:`copy` of an earlier state, taken over,
        not copied) in place, for the callers that hold this object. The
        version still moves on: values derived from the state must be
        formed again."""
        version = max(self.version, saved.version) + 1
        self.__setstate__(saved.__getstate__())
        self.version = version

    # ------------------------------------------------------------ layout

    @property
    def n_outputs(self):
        return self.coef.shape[0]

    @property
    def n_features(self):
        return self.coef.shape[1]

    def conform(self, rule):
        """Give the state the arrays ``rule`` will write, of the right shapes.

        An option switched on between ``partial_fit`` calls starts from
        now: averaging averages the steps from this call on, momentum starts
        at zero velocity, the L1 ledger starts empty (with the cumulative
        penalty counted from now). An option switched off drops its arrays.
        The compiled pass is only ever given arrays of the shapes it writes.
        """
        shape = self.coef.shape
        n_out = shape[0]

        def want(on, name, full):
            current = getattr(self, name)
            if on and current.shape != full:
                setattr(self, name, np.zeros(full))
                return True
            if not on and current.size:
                setattr(self, name, np.zeros((0,) * current.ndim))
            return False

        if want(rule.average is not None, "avg_coef", shape):
            self.avg_intercept = np.zeros(n_out)
            self.clock[K.AVG_B] = self.clock[K.AVG_N] = self.clock[K.AVG_CHECK] = 0.0
        if rule.average is None:
            want(False, "avg_intercept", None)
            # no lazy sum left to correct: the kernel must not write one
            self.clock[K.AVG_B] = self.clock[K.AVG_N] = self.clock[K.AVG_CHECK] = 0.0
        if want(rule.l1 is not None, "l1_applied", shape):
            self.clock[K.L1_U] = 0.0
            # sum(|coef|) is only kept up to date while L1 is on
            self.norms[:, K.ABS] = np.abs(self.coef).sum(axis=1)
        if want(rule.momentum is not None, "velocity", shape):
            self.velocity_b = np.zeros(n_out)
        if rule.momentum is None:
            want(False, "velocity_b", None)

    def replace_weights(self, coef):
        """New weights (unscaled); the averaging sum absorbs the old ones
        first, so past averages are kept. Arrays are replaced, not written
        in place."""
        if self.avg_coef.size and self.clock[K.AVG_B] != 0.0:
            # the lazy sum avg_coef + AVG_B * coef (unscaled coef), made explicit
            self.avg_coef = self.avg_coef + self.clock[K.AVG_B] * self.coef
            self.clock[K.AVG_B] = 0.0
        self.coef = np.array(coef, dtype=self.coef.dtype, order="C")
        self.clock[K.SCALE] = 1.0
        K.recount_norms(self.coef, self.norms)

    def replace_averaged_weights(self, coef):
        """New averaged weights (real values, averaging begun); the weights
        and the count of steps averaged stay, so the running average goes
        on from these. The array is replaced, not written in place."""
        # the lazy sum avg_coef + AVG_B * coef is n times the average
        self.avg_coef = np.array(coef, dtype=np.float64, order="C") * self.clock[K.AVG_N]
        self.clock[K.AVG_B] = 0.0

    def snapshot_output(self, k):
        """Output ``k`` as it is now (real, unscaled values), for
        :meth:`restore_outputs`: its weights, intercept, averages, L1 ledger
        and velocity. Costs one output's weights."""
        scale = self.clock[K.SCALE]
        snap = {"coef": self.coef[k] * scale, "intercept": self.intercept[k],
                "l1_u": float(self.clock[K.L1_U])}
        if self.avg_coef.size:
            if self.averaging():
                n = self.clock[K.AVG_N]
                snap["avg_coef"] = (self.avg_coef[k] + self.clock[K.AVG_B] * self.coef[k]) / n
                snap["avg_intercept"] = self.avg_intercept[k]
            else:  # not begun yet: its average will be its weights
                snap["avg_coef"], snap["avg_intercept"] = snap["coef"], snap["intercept"]
        for name in ("l1_applied", "velocity", "velocity_b"):
            if getattr(self, name).size:
                snap[name] = getattr(self, name)[k].copy()
        return snap

    def restore_outputs(self, snapshots):
        """Put outputs back as :meth:`snapshot_output` saw them (the classes of
        a one-vs-rest fit that stopped before the others). Folds the lazy
        scale first: costs all the weights once."""
        K.fold_scale(self.coef, self.clock, self.avg_coef, self.norms)
        n_avg = self.clock[K.AVG_N]
        for k, snap in snapshots.items():
            self.coef[k] = snap["coef"]
            self.intercept[k] = snap["intercept"]
            if "avg_coef" in snap and n_avg > 0:
                # AVG_B is 0 after the fold: the averaged weights are avg_coef / n
                self.avg_coef[k] = snap["avg_coef"] * n_avg
                self.avg_intercept[k] = snap["avg_intercept"]
            for name in ("l1_applied", "velocity", "velocity_b"):
                if name in snap:
                    getattr(self, name)[k] = snap[name]
            if "l1_applied" in snap:
                # The cumulative L1 penalty grew while the class was stopped; it
                # must not owe that: a weight's unpaid penalty (u + q for w > 0,
                # u - q for w < 0) stays what it was at the stop.
                grown = self.clock[K.L1_U] - snap["l1_u"]
                self.l1_applied[k] -= np.sign(snap["coef"]) * grown
        K.recount_norms(self.coef, self.norms)

    def arrays(self):
        """The state tuple the kernel takes (with its column-slot scratch).

        Every array is made C-ordered and writable first (a model loaded
        read-only, e.g. memory-mapped, trains on its own copy)."""
        for name in ("coef", "intercept", "avg_coef", "avg_intercept", "l1_applied",
                     "velocity", "velocity_b", "clock", "norms"):
            value = getattr(self, name)
            if not value.flags.carray:  # C-contiguous, aligned and writeable
                setattr(self, name, np.require(value, requirements=("C", "W", "A")))
        slot = self._scratch.get("slot")
        if slot is None:
            slot = self._scratch["slot"] = np.full(self.n_features, -1, dtype=np.int32)
        return (self.coef, self.intercept, self.avg_coef, self.avg_intercept, self.l1_applied,
                self.velocity, self.velocity_b, self.clock, self.norms, slot)

    def part(self, outputs, index, private=()):
        """Outputs ``outputs`` (a slice) as a state of their own, for thread
        ``index`` of a :class:`SplitPass`: views of this state's rows,
        except the arrays named in ``private`` and the clock (which every
        pass writes: the split pass merges the parts'), which are copies
        of their own (see :func:`padded_copy`); and scratch of their own,
        kept in this state's (so a stream allocates it once). Call
        :meth:`arrays` on this state first."""
        part = EngineState.__new__(EngineState)
        part.__dict__.update(self.__dict__)  # the scalars: eta, seed, smoothness ...
        for name in _PER_OUTPUT:
            value = getattr(self, name)[outputs]
            setattr(part, name, padded_copy(value) if name in private else value)
        part.clock = padded_copy(self.clock)
        part._scratch = self._scratch.setdefault(("part", index), {})
        return part

    def drop_scratch(self):
        """Forget the scratch (after a pass that failed half way, whose marks
        may not have been cleared)."""
        self._scratch = {}

    # ----------------------------------------------------------- reading

    @property
    def t(self):
        """Samples seen + 1, as scikit-learn's ``t_``."""
        return float(self.clock[K.T])

    def weights(self):
        """The current (not averaged) weights and intercepts."""
        return self.coef * self.clock[K.SCALE], self.intercept.copy()

    def averaging(self):
        """Whether averaged weights exist (averaging on and begun)."""
        return self.avg_coef.size > 0 and self.clock[K.AVG_N] > 0

    def averaged_weights(self):
        """Averaged weights and intercepts, or None before averaging began."""
        if not self.averaging():
            return None
        n = self.clock[K.AVG_N]
        coef = (self.avg_coef + self.clock[K.AVG_B] * self.coef) / n
        return coef, self.avg_intercept.copy()

    def scores(self, X, averaged):
        """``X @ W.T`` for the current or averaged weights, intercepts left
        out, without forming the weights: it costs the non-zeros of X."""
        if averaged:
            n = self.clock[K.AVG_N]
            return (_dot(X, self.avg_coef) + self.clock[K.AVG_B] * _dot(X, self.coef)) / n
        return self.clock[K.SCALE] * _dot(X, self.coef)

    def squared_norm(self):
        """``||w||^2`` of the current weights, from the tracked norm."""
        scale = float(self.clock[K.SCALE])
        return scale * scale * max(float(self.norms[:, K.SQ].sum()), 0.0)

    def penalty(self, l2, l1):
        """``l2 / 2 * ||w||^2 + l1 * |w|_1`` from the tracked norms."""
        scale = float(self.clock[K.SCALE])
        sq, ab = (float(v) for v in self.norms.sum(axis=0))
        # Python floats: an overflow gives inf (checked by the caller), no warning
        return 0.5 * l2 * scale * scale * max(sq, 0.0) + (l1 * scale * max(ab, 0.0) if l1 else 0.0)

    def see_data(self, chunk):
        """Fold a chunk's ``Smoothness`` into the running maximum (the caps
        only tighten)."""
        self.smoothness = tuple(map(max, self.smoothness, chunk))

    def is_finite(self, full=False):
        """Whether the state is finite.

        The norms track ``sum(coef**2)`` and the clock the changes to the
        averaging sums, so a weight that overflowed shows there: the check
        costs the number of outputs. ``full=True`` scans every array instead.
        """
        if full:
            arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
            return all(np.isfinite(a).all() for a in arrays)
        # (velocity is empty without momentum; with it every weight moved anyway)
        return _all_finite(self.clock, self.norms, self.intercept, self.avg_intercept,
                           self.velocity_b, self.velocity)

    def mix(self, states, rows):
        """Become the mix of ``states``, each trained from this state on its
        own share of the rows (``rows``: how many each saw), weighted by
        their rows: iterative parameter mixing (``skgd.dask.DataParallel``).

        Weights, intercepts, velocities and the L1 ledger are averaged, and
        each mixed weight then pays the L1 penalty it still owes, clipped at
        zero (the engine's rule); the averaging sums pool every step any
        state took since averaging began (this state's counted once); the
        sample count adds the states' samples. The mix of one state is that
        state.
        """
        names = ("coef", "intercept", "avg_coef", "avg_intercept", "l1_applied", "velocity",
                 "velocity_b", "clock", "norms")
        if len(states) == 1:
            for name in names:
                setattr(self, name, getattr(states[0], name))
            self.version += 1
            return
        p = rows / rows.sum()
        start_clock = self.clock
        clock = states[0].clock.copy()
        clock[K.T] = start_clock[K.T] + sum(s.clock[K.T] - start_clock[K.T] for s in states)
        clock[K.SCALE] = 1.0
        # the averaging sums' changes since the start, counted once (summing
        # the states' totals would count the start once per state and double
        # it every round: infinite, read as divergence, after ~1000 rounds)
        clock[K.AVG_CHECK] = start_clock[K.AVG_CHECK] + sum(
            s.clock[K.AVG_CHECK] - start_clock[K.AVG_CHECK] for s in states)
        coef = _weighted([s.coef * s.clock[K.SCALE] for s in states], p)
        if self.avg_coef.size:
            self._pool_averages(states, clock)
        if self.l1_applied.size:
            clock[K.L1_U] = float(np.dot(p, [s.clock[K.L1_U] for s in states]))
            self.l1_applied = _weighted([s.l1_applied for s in states], p)
            _pay_l1(coef, self.l1_applied, clock[K.L1_U])
        if self.velocity.size:
            self.velocity = _weighted([s.velocity for s in states], p)
            self.velocity_b = _weighted([s.velocity_b for s in states], p)
        self.coef = coef.astype(self.coef.dtype)
        self.intercept = _weighted([s.intercept for s in states], p)
        self.clock = clock
        self.norms = np.zeros_like(self.norms)
        K.recount_norms(self.coef, self.norms)
        self.version += 1

    def _pool_averages(self, states, clock):
        """The averaging sums of :meth:`mix`: the average of every step any
        state took since averaging began (this state's sums counted once)."""
        n0 = self.clock[K.AVG_N]
        s0 = self.avg_coef + self.clock[K.AVG_B] * self.coef  # explicit sum of real weights
        i0 = self.avg_intercept * n0
        total, total_b, n = s0.copy(), i0.copy(), n0
        for s in states:
            total += (s.avg_coef + s.clock[K.AVG_B] * s.coef) - s0
            total_b += s.avg_intercept * s.clock[K.AVG_N] - i0
            n += s.clock[K.AVG_N] - n0
        self.avg_coef = total
        self.avg_intercept = total_b / n if n > 0 else np.zeros_like(total_b)
        clock[K.AVG_B] = 0.0
        clock[K.AVG_N] = n


def _weighted(arrays, p):
    out = np.zeros(arrays[0].shape)
    for a, w in zip(arrays, p, strict=True):
        out += w * a
    return out


def _pay_l1(coef, applied, u):
    """Each weight pays the cumulative L1 penalty it still owes, clipped at
    zero (the engine's rule, Tsuruoka et al. 2009), in place."""
    w = coef
    new = np.where(w > 0, np.maximum(0.0, w - (u + applied)),
                   np.where(w < 0, np.minimum(0.0, w + (u - applied)), 0.0))
    applied += new - w
    coef[...] = new


# The state's arrays with one row per output (views of a part share them),
# and of those the small ones, which a pass writes on every row.
_PER_OUTPUT = ("coef", "intercept", "avg_coef", "avg_intercept", "l1_applied", "velocity",
               "velocity_b", "norms")
_SMALL_PER_OUTPUT = ("intercept", "avg_intercept", "velocity_b", "norms")

_CACHE_LINE = 64  # bytes


def padded_copy(a):
    """A copy of ``a`` (C-ordered) with a cache line to itself on each side.

    Threads that write arrays sharing a cache line, even at different
    places, pass the line between their cores on every write (false
    sharing): the small arrays a pass writes on every row (intercepts,
    norms, clock, objective) cost a split pass more than it saves when two
    threads' copies lie side by side, as small allocations do.
    """
    pad = _CACHE_LINE // a.itemsize
    buffer = np.zeros(a.size + 2 * pad, dtype=a.dtype)
    copy = buffer[pad:pad + a.size].reshape(a.shape)
    copy[...] = a
    return copy


@numba.njit(**K._JIT)
def _finite_values(a):
    for v in a.flat:
        if not np.isfinite(v):
            return False
    return True


@numba.njit(**K._JIT)
def _all_finite(clock, norms, intercept, avg_intercept, velocity_b, velocity):
    """Whether the arrays of the quick finiteness check hold only finite
    values, in one compiled call: a NumPy reduction per array cost a
    ``partial_fit`` of a 100-row chunk about a third of its compiled pass."""
    return (_finite_values(clock) and _finite_values(norms) and _finite_values(intercept)
            and _finite_values(avg_intercept) and _finite_values(velocity_b)
            and _finite_values(velocity))


def _dot(X, W):
    """``X @ W.T`` as a dense (n_samples, n_outputs) array, never copying W
    (sparse X times a transposed W would copy it whole)."""
    if not sp.issparse(X):
        return X @ W.T
    return np.column_stack([X @ w for w in W]) if W.shape[0] else np.zeros((X.shape[0], 0))


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


_PER_FEATURE = ("coef", "avg_coef", "l1_applied", "velocity")


class Undo:
    """What a pass changed, to put it back if the call fails.

    Created before anything changes: it keeps the small arrays (intercepts,
    clock, averaged intercepts, velocity of the intercepts) and the
    references of the per-feature arrays, which :meth:`EngineState.conform`
    may replace. :meth:`prepare` then either copies the per-feature arrays
    whole (dense data, momentum, or a pass that folds the lazy scale) or
    gives the pass a journal in which the kernel records the columns of
    every row before the row's step, repeats included, undone newest first
    (CSR streams): then a call costs what its data touches, however wide
    the model. A pass split across threads (:class:`SplitPass`) gets one
    journal per part of the outputs.
    """

    _PER_FEATURE = _PER_FEATURE
    _SMALL = ("intercept", "avg_intercept", "velocity_b", "clock", "norms")

    def __init__(self, state):
        self.state = state
        self.small = {name: _saved(getattr(state, name)) for name in self._SMALL}
        self.refs = {name: getattr(state, name) for name in self._PER_FEATURE}
        self.scalars = (state.eta, state.smoothness, state.lam_trace, state.version)
        self.parts = [slice(None)]
        self.journals = None
        self.full = None

    def prepare(self, X, rows, hyper, rule, parts=None):
        """Choose the journals or a full copy for a pass over ``X[rows]``,
        whose outputs are split into ``parts`` (slices; None: one part)."""
        state = self.state
        if (sp.issparse(X) and rule.momentum is None
                and not K.pass_would_fold(state.clock, np.asarray(hyper, dtype=np.float64),
                                          rows.size, rule.clip_norm is not None)):
            self.parts = parts or self.parts
            self.journals = [_new_journal(state, X, rows, len(range(*part.indices(
                state.n_outputs)))) for part in self.parts]
        else:
            self.full = {name: _saved(getattr(state, name)) for name in self._PER_FEATURE}

    @property
    def journal(self):
        """The journal of an unsplit pass (None: none)."""
        return None if self.journals is None else self.journals[0]

    def rollback(self):
        """Put the state back as it was before the pass."""
        state = self.state
        if self.journals is not None:
            for part, journal in zip(self.parts, self.journals, strict=True):
                K.journal_undo(journal, state.coef[part], state.avg_coef[part],
                               state.l1_applied[part])
        for name, value in (self.full or self.refs).items():
            setattr(state, name, value)
        for name, value in self.small.items():
            setattr(state, name, value)
        state.eta, state.smoothness, state.lam_trace, state.version = self.scalars
        state.drop_scratch()


def _saved(array):
    """A copy of ``array`` to put back; an empty array (an option that is
    off) cannot be written to, so it is kept as it is."""
    return array.copy() if array.size else array


def _new_journal(state, X, rows, n_out):
    """Journal arrays for a pass of ``n_out`` outputs over ``X[rows]``: one
    record per non-zero the rows hold (see ``skgd._kernels.journal_row``)."""
    nnz = int(X.indptr[-1] - X.indptr[0]) if rows.size == X.shape[0] else int(
        np.diff(X.indptr)[rows].sum())
    return (
        np.empty(nnz, dtype=np.int64),
        np.empty((n_out, nnz), dtype=state.coef.dtype),
        np.empty((n_out, nnz if state.avg_coef.size else 0)),
        np.empty((n_out, nnz if state.l1_applied.size else 0)),
        np.zeros(1, dtype=np.int64),
    )


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


# Compiled entry points of sgd_pass by argument-type key. numba's dispatcher
# types every argument on every call (tens of microseconds here); a streaming
# partial_fit on 100 rows costs not much more than that in total. The state
# arrays are the engine's own (C-ordered, writable, of fixed dtypes and
# dimensions), so only the caller's arrays, the loss and which optional steps
# are on can change the compiled specialization: that is the key.
_ENTRY_POINTS = {}


def _type_key(arrays, coef, loss_spec, loss_params, rule, journal):
    layout = tuple(_layout(a) for a in arrays)
    loss_key = loss_spec.name if isinstance(loss_spec, K.BuiltinLoss) else id(loss_spec[0])
    if rule is None:  # the plain pass: no compile-time options
        return (layout, coef.dtype.str, loss_key, len(loss_params))
    return (layout, coef.dtype.str, loss_key, len(loss_params),
            tuple(v is None for v in rule), rule.momentum is not None and rule.momentum[1],
            journal is None)


def _plain(state, hyper, rule, loss_spec, journal):
    """Whether :func:`~skgd._plain_pass.plain_pass` runs this pass: one
    output, a scalar loss, no journal, no step that buffers the gradient,
    and a schedule other than 'auto' and passive-aggressive."""
    if (state.n_outputs != 1 or journal is not None or rule.clip_value is not None
            or rule.clip_norm is not None or rule.momentum is not None):
        return False
    schedule = hyper[K.H_SCHEDULE]
    if schedule == AUTO or is_passive_aggressive(schedule):
        return False
    if isinstance(loss_spec, K.BuiltinLoss):
        return not K.BUILTIN_LOSSES[loss_spec.name][2]
    with quiet_experimental():
        return not K._is_multiclass(numba.typeof(loss_spec))


def _layout(a):
    """What numba's type of array ``a`` depends on."""
    flags = a.flags  # (a new object on every access)
    return a.dtype, a.ndim, flags.c_contiguous, flags.writeable, flags.aligned


# A first call of a configuration may compile it (1-3 s, once per machine:
# numba caches it on disk). If that takes longer than this, say so, once per
# process: a log message (logger "skgd", level INFO), and a line on stdout
# under ``verbose``.
_NOTICE_AFTER = 1.0
_noticed = []


def _compilation_notice(verbose):
    if _noticed:
        return
    _noticed.append(True)
    from ._numba_cache import user_cache_dir

    where = numba.config.CACHE_DIR or user_cache_dir()
    message = (
        "skgd: compiling the training loop for this configuration (a few seconds, "
        f"once per configuration and machine: it is cached in {where}). "
        "`python -m skgd.compile` compiles the common configurations ahead of time."
    )
    logging.getLogger("skgd").info(message)
    if verbose:
        print(message, flush=True)


def _call_kernel(kernel, args, key, verbose=False):
    entry = _ENTRY_POINTS.get(key)
    if entry is not None:
        return entry(*args)
    timer = None
    if not _noticed:
        timer = threading.Timer(_NOTICE_AFTER, _compilation_notice, args=(verbose,))
        timer.daemon = True
        timer.start()
    try:
        entry = _compile(kernel, args)
    finally:
        if timer is not None:
            timer.cancel()
    _ENTRY_POINTS[key] = entry
    return entry(*args)


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

    A pass is a context manager, as :class:`SplitPass` (which must let its
    threads go): ``with prepare_pass(...) as prepared``.
    """

    def __init__(self, state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                 shuffle, journal=None, out_weight=None, verbose=False, part=False):
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
        if not part and _plain(state, hyper, rule, loss_spec, journal):
            self.kernel = plain_pass
            if out_weight is None:
                out_weight = np.ones((1, 2))
            self.args = [data, Y, sample_weight, self.order, seed, state.arrays(), hyper,
                         loss_spec, loss_params,
                         np.inf if rule.average is None else rule.average,
                         0.0 if rule.l1 is None else rule.l1, cap, self.report, per_sample,
                         out_weight, self.objective]
            self.key = ("plain",) + _type_key(data + (Y, sample_weight, self.order), state.coef,
                                              loss_spec, loss_params, None, None) + (
                per_sample is None,)
        else:
            self.kernel = K.sgd_pass
            self.args = [data, Y, sample_weight, self.order, seed, state.arrays(), hyper,
                         loss_spec, loss_params, rule, journal, cap, self.report, per_sample,
                         out_weight, self.objective]
            self.key = _type_key(data + (Y, sample_weight, self.order), state.coef, loss_spec,
                                 loss_params, rule, journal) + (per_sample is None,
                                                                out_weight is None)

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


# A pass is split across threads only when each thread's part reads at least
# this many values (rows times non-zeros per row times outputs), about a
# millisecond of work: handing the parts to threads and back costs 60-120 us
# a pass (measured on a busy 2-core machine), creating the threads once per
# fit about as much again.
MIN_PART_WORK = 1 << 20


def most_parts(X, rows, n_outputs):
    """How many threads a pass of ``n_outputs`` outputs over ``X[rows]`` has
    work enough for (see ``MIN_PART_WORK``), each with two outputs at least.

    A part of one output would not run the code the whole pass runs: a
    loop over a batch's derivatives of one output (``derivs[r, k]``, the
    intercept's gradient) reads them with a stride of the number of
    outputs, and for a stride of 1 LLVM compiles a version of its own
    (vectorised, which sums in another order under ``reassoc``): the
    intercepts of a one-output part differ from the whole pass's in the
    last bit.
    """
    per_row = X.nnz / max(X.shape[0], 1) if sp.issparse(X) else X.shape[1]
    work = rows.size * max(per_row, 1.0) * n_outputs
    return min(n_outputs // 2, int(work // MIN_PART_WORK))


def splittable(hyper, rule):
    """Whether each output's steps in a pass are its own: what a pass split
    by outputs across threads needs to give the same model.

    The clock (sample count, lazy L2 scale, cumulative L1 penalty, averaging
    counts) moves alike in every part, and the objective, the class
    weights and the loss failures are per output. Two steps read every
    output at once, and keep a pass whole: 'auto' (its rate comes from
    the gradients and weights of all outputs) and ``clip_norm`` (the norm
    of the whole gradient).
    """
    return hyper[K.H_SCHEDULE] != AUTO and rule.clip_norm is None


def output_parts(n_outputs, n_parts):
    """``n_parts`` slices of about equal size that cover ``range(n_outputs)``."""
    bounds = [n_outputs * j // n_parts for j in range(n_parts + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def prepare_pass(state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                 shuffle, *, parts=None, journals=None, out_weight=None, verbose=False):
    """A :class:`Pass`, or with ``parts`` (slices of the outputs) a
    :class:`SplitPass` that runs each part on its own thread; ``journals``:
    the undo journals of the parts (see :class:`Undo`), or None."""
    if parts is None:
        return Pass(state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                    shuffle, journal=journals and journals[0], out_weight=out_weight,
                    verbose=verbose)
    return SplitPass(state, X, Y, sample_weight, rows, hyper, rule, loss_spec, loss_params,
                     shuffle, parts, journals=journals, out_weight=out_weight, verbose=verbose)


class SplitPass:
    """A :class:`Pass` whose outputs are split into parts, each run by its
    own thread over the same rows (the compiled pass releases the GIL).

    Each part trains its outputs' rows of the state (see
    :meth:`EngineState.part`: views, or copies where threads would write
    the same cache lines) with the code and the order of rows the whole
    pass would use; where the outputs' steps are independent (see
    :func:`splittable`), each output's numbers are then those of the
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
        clock = self.state.clock
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
        check = clock[K.AVG_CHECK]
        clock[:] = self.parts[0].clock
        clock[K.AVG_CHECK] = check + sum(part.clock[K.AVG_CHECK] - check for part in self.parts)
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


def _compile(kernel, args):
    """The compiled entry point of ``kernel`` for the types of ``args``,
    compiled (or loaded from numba's disk cache) if needed. Only the
    compilation is quieted (see :func:`~skgd.losses.quiet_experimental`),
    not the pass, which other threads may be running at the same time."""
    with quiet_experimental():  # user losses' C function pointers
        signature = tuple(numba.typeof(a) for a in args)
        kernel.compile(signature)
    return kernel.overloads[signature].entry_point


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
    if state.clock[K.AVG_B] != 0.0 and rule.average is None:
        problems.append("a lazy averaging sum without averaging arrays")
    if problems:
        raise RuntimeError("skgd engine: state and input do not match ("
                           + "; ".join(problems) + "). This is a bug in skgd.")
