"""Named slots of the engine's arrays: the ``clock`` (its scalar state), the
``norms`` (per output) and the run-time hyper-parameters (``hyper``).

The compiled passes index them (``skgd._kernels``, ``skgd._plain_pass``);
on the Python side only the state that owns them does (``skgd._state``).
"""


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
