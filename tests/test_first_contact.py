"""What a new user meets first: verbose output, ahead-of-time compilation,
clear errors for mixed labels, the link to the docs."""

import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor
from skgd import compile as skgd_compile

EPOCH = re.compile(
    r"^Epoch (\d+): objective [-\d.e+]+, norm [\d.e+]+, nnz \d+, bias [-\d.e+]+, "
    r"eta [\d.e+-]+, t \d+, [\d.]+ s(, validation score [\d.]+)?$")


def _verbose_lines(capsys, est, X, y):
    """What ``verbose`` prints, less the compile notices (a first fit of a
    configuration in this process says it compiles, and how long it took)."""
    capsys.readouterr()
    est.set_params(verbose=1).fit(X, y)
    return [line for line in capsys.readouterr().out.splitlines()
            if not line.startswith("skgd: compil")]


def test_verbose_prints_each_epoch_and_why_training_stopped(capsys):
    X, y = load_iris(return_X_y=True)
    est = MinibatchSGDClassifier(shuffle=False, random_state=0)
    lines = _verbose_lines(capsys, est, X, y)
    epochs = [EPOCH.match(line) for line in lines[:-1]]
    assert all(epochs), lines
    assert [int(m.group(1)) for m in epochs] == list(range(1, est.n_iter_ + 1))
    assert not any(m.group(2) for m in epochs)  # no validation without early stopping
    # iris's classes converge at different epochs (scikit-learn's too)
    assert re.fullmatch(
        rf"Convergence after {est.n_iter_} epochs took [\d.]+ seconds: the training "
        r"objective did not improve by tol=0.001 for 5 epochs"
        r"( \(and [\d.]+ seconds compiling\))?; the classes stopped "
        r"after \[\d+, \d+, \d+\] epochs\.", lines[-1]), lines[-1]


def test_verbose_reports_validation_scores_and_early_stopping(capsys):
    X, y = load_iris(return_X_y=True)
    est = MinibatchSGDClassifier(early_stopping=True, random_state=0, loss="log_loss",
                                 multi_class="multinomial")
    lines = _verbose_lines(capsys, est, X, y)
    scores = [float(EPOCH.match(line).group(2).split()[-1]) for line in lines[:-1]]
    assert scores == pytest.approx(est.validation_scores_)
    assert lines[-1].startswith(f"Convergence after {est.n_iter_} epochs took ")
    assert "the validation score did not improve" in lines[-1]


@pytest.mark.parametrize("tol, words", [(None, r"Ran max_iter=3 epochs \(tol=None\)"),
                                        (1e-3, r"Stopped at max_iter=3 epochs .*before converging")])
def test_verbose_says_when_max_iter_stopped_training(capsys, tol, words):
    X, y = load_iris(return_X_y=True)
    est = MinibatchSGDRegressor(max_iter=3, tol=tol, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ConvergenceWarning, the StepCapWarning
        lines = _verbose_lines(capsys, est, X, y.astype(float))
    assert len(lines) == 4 and all(EPOCH.match(line) for line in lines[:3])
    assert re.match(words, lines[-1]), lines[-1]


def test_the_rate_printed_is_the_rate_used(capsys):
    """'invscaling' with eta0=0.1, power_t=0.5 on 150 rows: after epoch e the
    next step is eta0 / (150 e + 1) ** 0.5 (not eta0)."""
    X, y = load_iris(return_X_y=True)
    est = MinibatchSGDRegressor(learning_rate="invscaling", eta0=0.1, power_t=0.5,
                                max_iter=2, tol=None, random_state=0)
    X = X / 10  # small enough that the step cap does not bind
    lines = _verbose_lines(capsys, est, X, y.astype(float))
    etas = [float(re.search(r"eta ([\d.e+-]+)", line).group(1)) for line in lines[:2]]
    assert etas == pytest.approx([0.1 / 151**0.5, 0.1 / 301**0.5], rel=1e-2)


def test_ahead_of_time_compilation_lists_and_runs_its_configurations(capsys):
    assert skgd_compile.main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    configs = skgd_compile.configurations()
    assert len(listed) == len(configs) >= 20
    # one of each kind (fit of each estimator, a stream, one-vs-rest): the
    # whole list compiles in about 40 s on an empty cache
    kinds = {}
    for config in configs:
        kinds.setdefault((config[0].split()[0], config[3], "3 classes" in config[0]), config)
    skgd_compile.compile_all(configs=list(kinds.values()))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(kinds) >= 4 and out[-1].startswith(f"[{len(kinds)}/{len(kinds)}]")


def test_mixed_label_types_are_a_type_error():
    X = np.random.RandomState(0).rand(4, 2)
    y = np.array([1, "a", 1, "a"], dtype=object)
    with pytest.raises(TypeError, match=r"y mixes label types \(int, str\)"):
        MinibatchSGDClassifier().fit(X, y)
    with pytest.raises(TypeError, match=r"y mixes label types"):
        MinibatchSGDClassifier().partial_fit(X, y, classes=[1, 2])


def test_html_repr_links_to_skgds_documentation():
    html = MinibatchSGDClassifier()._repr_html_()
    assert "generated/skgd.MinibatchSGDClassifier.html" in html
