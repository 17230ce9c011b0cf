"""The ``tol`` / ``n_iter_no_change`` stopping rule (skgd._stopping) on its
own, against its definition (scikit-learn's): a problem makes no progress
in an epoch when its criterion is above its best so far minus ``tol``; after
``patience`` such epochs in a row it has converged, unless its rate can
still be lowered; a held epoch does not count."""

import math

import numpy as np
import pytest

from skgd._stopping import MIN_STEPS, StoppingRule, patience_epochs


def _never_lower(k):
    return False


def _run(rule, criteria, lower_rate=_never_lower, holds=None):
    """Feed ``criteria[e]`` (one row per epoch) to ``rule``; returns the
    epoch (from 1) at which each problem stopped, None if it did not."""
    stopped_at = [None] * rule.best.size
    for epoch, current in enumerate(criteria, start=1):
        hold = bool(holds[epoch - 1]) if holds is not None else False
        for k in rule.update(epoch, np.asarray(current, dtype=float), lower_rate, hold=hold):
            assert stopped_at[k] is None, "a problem stops once"
            stopped_at[k] = epoch
    return stopped_at


def _first_stop(criteria, tol, patience):
    """The definition, one problem, written out plainly."""
    best, run = math.inf, 0
    for epoch, value in enumerate(criteria, start=1):
        run = run + 1 if value > best - tol else 0
        best = min(best, value)
        if run >= patience:
            return epoch
    return None


@pytest.mark.parametrize("criteria, tol, patience", [
    # improving by more than tol every epoch: never stops
    ([10.0, 9.0, 8.0, 7.0, 6.0, 5.0], 0.5, 2),
    # improving by less than tol: stops after `patience` such epochs
    ([10.0, 9.9, 9.8, 9.7, 9.6], 0.5, 2),
    # a worse epoch, then a new best by more than tol: the count starts again
    ([10.0, 11.0, 8.0, 8.1, 8.2, 8.3], 0.5, 3),
    # equal to the best minus tol exactly is progress (not above it)
    ([4.0, 3.0, 2.0, 1.0], 1.0, 1),
    # tol = 0: only a value above the best is no progress
    ([3.0, 2.0, 2.0, 2.5, 2.5, 1.0], 0.0, 2),
])
def test_one_problem_stops_as_the_rule_says(criteria, tol, patience):
    rule = StoppingRule(1, tol, patience)
    assert _run(rule, [[c] for c in criteria]) == [_first_stop(criteria, tol, patience)]


def test_stop_epochs_of_hand_worked_sequences():
    # tol 0.5, patience 2: 10 (best), 9.9 (> 9.5: 1), 9.8 (> 9.4: 2) -> stops at 3
    assert _run(StoppingRule(1, 0.5, 2), [[10.0], [9.9], [9.8], [9.7]]) == [3]
    # tol 1, patience 1: 4 (best), 3 (= 4 - 1, not above it: progress), 2.5
    # (> 3 - 1: no progress) -> stops at 3
    assert _run(StoppingRule(1, 1.0, 1), [[4.0], [3.0], [2.5]]) == [3]


def test_without_tol_nothing_stops_but_epochs_are_counted():
    rule = StoppingRule(2, None, 1)
    assert _run(rule, [[5.0, 5.0]] * 6) == [None, None]
    assert not rule.done
    assert rule.n_iter.tolist() == [6, 6]


def test_problems_stop_on_their_own_and_keep_their_epoch_count():
    rule = StoppingRule(2, 0.1, 2)
    # problem 0 stalls from epoch 2 (stops at 3); problem 1 improves until
    # epoch 4, stalls from 5 (stops at 6). A stopped problem's entry is
    # ignored: NaN there must not matter.
    criteria = [[5.0, 5.0], [5.0, 4.0], [5.0, 3.0], [np.nan, 2.0], [np.nan, 2.0], [np.nan, 2.0]]
    assert _run(rule, criteria) == [3, 6]
    assert rule.n_iter.tolist() == [3, 6]
    assert rule.done


def test_lowering_the_rate_restarts_the_count_until_it_cannot():
    lowered = []

    def lower_rate(k):
        lowered.append(k)
        return len(lowered) <= 2  # two lowerings, then the rate is at its floor

    rule = StoppingRule(1, 0.1, 2)
    # flat from the start: no progress in epochs 2, 3 (lowered), 4, 5
    # (lowered), 6, 7 (cannot lower: stops)
    assert _run(rule, [[1.0]] * 10, lower_rate) == [7]
    assert lowered == [0, 0, 0]


def test_held_epochs_do_not_count_but_their_best_does():
    holds = [False, True, True, True, False, False]
    # patience 2 would stop at epoch 3 without the holds
    assert _run(StoppingRule(1, 0.1, 2), [[1.0]] * 6, holds=holds) == [6]
    # epoch 2 (held) sets a best of 0.5: epochs 5 and 6, at 0.9, make no
    # progress against it although they beat epoch 1's 1.0 by more than tol
    assert _run(StoppingRule(1, 0.05, 2), [[1.0], [0.5], [0.6], [0.6], [0.9], [0.9]],
                holds=holds) == [6]


# ----------------------------------------------------------------- patience


@pytest.mark.parametrize("n_rows", [1, 7, 60, 99, 100, 101, 1000, 32561])
@pytest.mark.parametrize("batch_size", [1, 2, 32, 256, 5000])
@pytest.mark.parametrize("n_iter_no_change", [1, 5])
def test_patience_spans_the_fewest_epochs_of_enough_steps(n_rows, batch_size, n_iter_no_change):
    """``patience`` epochs of ``ceil(n_rows / batch)`` steps hold at least
    ``n_iter_no_change * min(n_rows, MIN_STEPS)`` steps, and a whole number
    of ``n_iter_no_change`` epochs fewer would not."""
    steps = math.ceil(n_rows / min(batch_size, n_rows))  # a batch beyond the data is the data
    wanted = min(n_rows, MIN_STEPS)
    patience = patience_epochs(n_iter_no_change, n_rows, batch_size)
    assert patience % n_iter_no_change == 0
    per_unit = patience // n_iter_no_change  # epochs per epoch of scikit-learn's rule
    assert per_unit * steps >= wanted
    assert per_unit == 1 or (per_unit - 1) * steps < wanted


@pytest.mark.parametrize("n_rows, batch_size, expected", [
    (1000, 1, 5),  # per-sample steps on 100+ rows: scikit-learn's rule
    (30, 1, 5),  # fewer rows than MIN_STEPS: an epoch is every row
    (1000, 32, 20),  # 32 steps an epoch: 4 epochs hold 128 >= 100 steps, 3 only 96
    (60, 256, 300),  # one step an epoch, every row in it: 60 epochs per patience unit
    (1000, 10, 5),  # exactly 100 steps an epoch
])
def test_patience_of_hand_worked_cases(n_rows, batch_size, expected):
    assert patience_epochs(5, n_rows, batch_size) == expected
