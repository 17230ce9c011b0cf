"""The engine's state: the weights behind one interface.

:class:`EngineState` owns everything training needs to continue exactly
where it stopped, and the lazy representation of the weights: real weights
``clock[SCALE] * coef``, the lazy sum of the averaged weights ``avg_coef +
clock[AVG_B] * coef``, the L1 ledger, the norms, mixing and folding. Its
compiled rules are in ``skgd._lazy_weights``; the slots of its ``clock`` and
``norms`` in ``skgd._slots``. Outside the compiled passes, only this class
(and :class:`skgd._undo.Undo`, which saves and puts back its arrays) indexes
them.
"""

import numba
import numpy as np
import scipy.sparse as sp

from ._jit import _JIT
from ._lazy_weights import fold_scale, recount_norms
from ._slots import ABS, AVG_B, AVG_CHECK, AVG_N, L1_U, N_CLOCK, PASSES, SCALE, SQ, T
from ._smoothness import NO_DATA


def _itself(w):
    return w


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
        Scalar state; slots named in ``skgd._slots``.
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
                 coef_init=None, intercept_init=None, average_init=None):
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
        if average_init is not None:
            # the sum of the average before any step (see average_value):
            # kept by conform while averaging is on
            self.avg_coef = np.array(average_init, dtype=np.float64, order="C")
            self.avg_intercept = np.zeros(n_outputs)
        self.l1_applied = np.zeros((0, 0))
        self.velocity = np.zeros((0, 0))
        self.velocity_b = np.zeros(0)
        self.clock = np.zeros(N_CLOCK, dtype=np.float64)
        self.clock[T] = 1.0
        self.clock[SCALE] = 1.0
        # per output: sum(coef ** 2), sum(|coef|) (skgd._slots.SQ, ABS)
        self.norms = np.zeros((n_outputs, 2), dtype=np.float64)
        if coef_init is not None:
            recount_norms(self.coef, self.norms)
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
            self.clock = self.clock[[T, SCALE, L1_U, AVG_B, AVG_N, PASSES, -1]]
            self.norms = np.zeros((self.coef.shape[0], 2))
            recount_norms(self.coef, self.norms)
        if self.clock.size < N_CLOCK:  # saved before 'auto': its slots start empty
            self.clock = np.concatenate([self.clock, np.zeros(N_CLOCK - self.clock.size)])

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
            self.clock[AVG_B] = self.clock[AVG_N] = self.clock[AVG_CHECK] = 0.0
        if rule.average is None:
            want(False, "avg_intercept", None)
            # no lazy sum left to correct: the kernel must not write one
            self.clock[AVG_B] = self.clock[AVG_N] = self.clock[AVG_CHECK] = 0.0
        if want(rule.l1 is not None, "l1_applied", shape):
            self.clock[L1_U] = 0.0
            # sum(|coef|) is only kept up to date while L1 is on
            self.norms[:, ABS] = np.abs(self.coef).sum(axis=1)
        if want(rule.momentum is not None, "velocity", shape):
            self.velocity_b = np.zeros(n_out)
        if rule.momentum is None:
            want(False, "velocity_b", None)

    def replace_weights(self, coef):
        """New weights (unscaled); the averaging sum absorbs the old ones
        first, so past averages are kept. Arrays are replaced, not written
        in place."""
        if self.avg_coef.size and self.clock[AVG_B] != 0.0:
            self.avg_coef = self._average_sum()  # made explicit
            self.clock[AVG_B] = 0.0
        self.coef = np.array(coef, dtype=self.coef.dtype, order="C")
        self.clock[SCALE] = 1.0
        recount_norms(self.coef, self.norms)

    def replace_averaged_weights(self, coef):
        """New averaged weights (real values, averaging begun); the weights
        and the count of steps averaged stay, so the running average goes
        on from these. The array is replaced, not written in place."""
        # the lazy sum avg_coef + AVG_B * coef is n times the average
        self.avg_coef = np.array(coef, dtype=np.float64, order="C") * self.clock[AVG_N]
        self.clock[AVG_B] = 0.0

    def snapshot_output(self, k):
        """Output ``k`` as it is now (real, unscaled values), for
        :meth:`restore_outputs`: its weights, intercept, averages, L1 ledger
        and velocity. Costs one output's weights."""
        scale = self.clock[SCALE]
        snap = {"coef": self.coef[k] * scale, "intercept": self.intercept[k],
                "l1_u": float(self.clock[L1_U])}
        if self.avg_coef.size:
            if self.averaging():
                snap["avg_coef"] = self._averaged(lambda w: w[k])
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
        fold_scale(self.coef, self.clock, self.avg_coef, self.norms)
        n_avg = self.clock[AVG_N]
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
                grown = self.clock[L1_U] - snap["l1_u"]
                self.l1_applied[k] -= np.sign(snap["coef"]) * grown
        recount_norms(self.coef, self.norms)

    @staticmethod
    def _pay_l1(coef, applied, u):
        """Each weight of ``coef`` (real values) pays the cumulative L1
        penalty ``u`` it still owes by its ledger ``applied``, clipped at
        zero, in place: the rule the compiled passes apply to the weights a
        step touches (``skgd._lazy_weights.penalize_l1``; Tsuruoka et al.
        2009)."""
        w = coef
        new = np.where(w > 0, np.maximum(0.0, w - (u + applied)),
                       np.where(w < 0, np.minimum(0.0, w + (u - applied)), 0.0))
        applied += new - w
        coef[...] = new

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

    def join_clocks(self, parts):
        """After a pass split by outputs: the clock of the parts (see
        :meth:`part`), which moved alike, becomes this state's; only
        ``clock[AVG_CHECK]``, a sum over the outputs that is only ever tested
        for finiteness, adds up the parts' growths."""
        clock = self.clock
        check = clock[AVG_CHECK]
        clock[:] = parts[0].clock
        clock[AVG_CHECK] = check + sum(part.clock[AVG_CHECK] - check for part in parts)

    def drop_scratch(self):
        """Forget the scratch (after a pass that failed half way, whose marks
        may not have been cleared)."""
        self._scratch = {}

    # ----------------------------------------------------------- reading

    @property
    def t(self):
        """Samples seen + 1, as scikit-learn's ``t_``."""
        return float(self.clock[T])

    def weights(self):
        """The current (not averaged) weights and intercepts."""
        return self.coef * self.clock[SCALE], self.intercept.copy()

    def averaging(self):
        """Whether averaged weights exist (averaging on and begun)."""
        return self.avg_coef.size > 0 and self.clock[AVG_N] > 0

    def average_value(self):
        """What scikit-learn's ``_average_coef`` holds: the averaged weights
        once averaging began, before that the sum the average starts from
        (zero, unless a warm start seeded it: see ``average_init``)."""
        if self.averaging():
            return self._averaged()
        return np.array(self.avg_coef, dtype=np.float64)

    def averaged_weights(self):
        """Averaged weights and intercepts, or None before averaging began."""
        if not self.averaging():
            return None
        return self._averaged(), self.avg_intercept.copy()

    def scores(self, X, averaged):
        """``X @ W.T`` for the current or averaged weights, intercepts left
        out, without forming the weights: it costs the non-zeros of X."""
        if averaged:
            return self._averaged(lambda w: _dot(X, w))
        return self.clock[SCALE] * _dot(X, self.coef)

    def _average_sum(self, read=_itself):
        """The lazy sum of the averaged weights, ``avg_coef + clock[AVG_B] *
        coef``: the sum of the real weights of every step averaged
        (``clock[AVG_N]`` times their average), each array first ``read``
        (a linear map: an output's row, the scores of X)."""
        return read(self.avg_coef) + self.clock[AVG_B] * read(self.coef)

    def _averaged(self, read=_itself):
        """The averaged weights (through ``read``, see :meth:`_average_sum`),
        averaging begun."""
        return self._average_sum(read) / self.clock[AVG_N]

    def has_lazy_average(self):
        """Whether the lazy sum of the averaged weights still leans on
        ``coef`` (``clock[AVG_B]`` non-zero: see :meth:`_average_sum`)."""
        return self.clock[AVG_B] != 0.0

    def squared_norm(self):
        """``||w||^2`` of the current weights, from the tracked norm."""
        scale = float(self.clock[SCALE])
        return scale * scale * max(float(self.norms[:, SQ].sum()), 0.0)

    def penalty(self, l2, l1):
        """``l2 / 2 * ||w||^2 + l1 * |w|_1`` from the tracked norms."""
        scale = float(self.clock[SCALE])
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
        clock[T] = start_clock[T] + sum(s.clock[T] - start_clock[T] for s in states)
        clock[SCALE] = 1.0
        # the averaging sums' changes since the start, counted once (summing
        # the states' totals would count the start once per state and double
        # it every round: infinite, read as divergence, after ~1000 rounds)
        clock[AVG_CHECK] = start_clock[AVG_CHECK] + sum(
            s.clock[AVG_CHECK] - start_clock[AVG_CHECK] for s in states)
        coef = _weighted([s.coef * s.clock[SCALE] for s in states], p)
        if self.avg_coef.size:
            self._pool_averages(states, clock)
        if self.l1_applied.size:
            clock[L1_U] = float(np.dot(p, [s.clock[L1_U] for s in states]))
            self.l1_applied = _weighted([s.l1_applied for s in states], p)
            self._pay_l1(coef, self.l1_applied, clock[L1_U])
        if self.velocity.size:
            self.velocity = _weighted([s.velocity for s in states], p)
            self.velocity_b = _weighted([s.velocity_b for s in states], p)
        self.coef = coef.astype(self.coef.dtype)
        self.intercept = _weighted([s.intercept for s in states], p)
        self.clock = clock
        self.norms = np.zeros_like(self.norms)
        recount_norms(self.coef, self.norms)
        self.version += 1

    def _pool_averages(self, states, clock):
        """The averaging sums of :meth:`mix`: the average of every step any
        state took since averaging began (this state's sums counted once)."""
        n0 = self.clock[AVG_N]
        s0 = self._average_sum()
        i0 = self.avg_intercept * n0
        total, total_b, n = s0.copy(), i0.copy(), n0
        for s in states:
            total += s._average_sum() - s0
            total_b += s.avg_intercept * s.clock[AVG_N] - i0
            n += s.clock[AVG_N] - n0
        self.avg_coef = total
        self.avg_intercept = total_b / n if n > 0 else np.zeros_like(total_b)
        clock[AVG_B] = 0.0
        clock[AVG_N] = n


# A saved model names its state's class by where it was first defined (a
# pickle, and the types skops asks a user to trust, documented in
# docs/reliability.rst): it keeps that name, which skgd._engine still gives.
EngineState.__module__ = "skgd._engine"


def _weighted(arrays, p):
    out = np.zeros(arrays[0].shape)
    for a, w in zip(arrays, p, strict=True):
        out += w * a
    return out


# The state's arrays with one row per output (views of a part share them),
# and of those the small ones, which a pass writes on every row.
_PER_OUTPUT = ("coef", "intercept", "avg_coef", "avg_intercept", "l1_applied", "velocity",
               "velocity_b", "norms")
_SMALL_PER_OUTPUT = ("intercept", "avg_intercept", "velocity_b", "norms")
# and the per-feature ones
_PER_FEATURE = ("coef", "avg_coef", "l1_applied", "velocity")

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


@numba.njit(**_JIT)
def _finite_values(a):
    for v in a.flat:
        if not np.isfinite(v):
            return False
    return True


@numba.njit(**_JIT)
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
