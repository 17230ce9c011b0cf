"""How many compiled specializations of the training pass a fixed sweep of
options produces (a count, not a time).

Each specialization costs a user one to a few seconds of compilation the
first time it runs. The pass is specialised only on what its per-row cost
depends on: the built-in loss, the input layout and dtype, and one row per
step or minibatches; averaging, L1 and elastic net, class weights and the
learning-rate schedule are run-time choices that compile nothing new. The
sweep runs in a new process, so the count does not depend on what other
tests compiled before.
"""

import json
import subprocess
import sys
import textwrap

SWEEP = textwrap.dedent("""
    import json, warnings
    import numpy as np, scipy.sparse as sp
    from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor, _kernels, _plain_pass

    rng = np.random.RandomState(0)
    X = rng.rand(60, 6)
    X[X < 0.5] = 0.0
    y = (X[:, 0] + X[:, 1] > 0.5).astype(int)
    counts = {}
    def count(name):
        counts[name] = (len(_plain_pass.plain_pass.overloads), len(_kernels.sgd_pass.overloads))

    options = [dict(penalty="l2"), dict(penalty="elasticnet"), dict(penalty="l2", average=True),
               dict(penalty="l1", average=True), dict(class_weight={0: 1.0, 1: 3.0}),
               dict(learning_rate="invscaling", eta0=0.1),
               dict(learning_rate="adaptive", eta0=0.1), dict(fit_intercept=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for loss in ("hinge", "log_loss", "modified_huber"):
            for kw in options:
                for batch_size, data in ((1, X), (32, sp.csr_matrix(X))):
                    MinibatchSGDClassifier(loss=loss, batch_size=batch_size, max_iter=3,
                                           tol=None, **kw).fit(data, y)
        count("classifier sweep")
        for kw in options[:4]:
            MinibatchSGDRegressor(max_iter=3, tol=None, **kw).fit(X, X[:, 0])
        count("regressor sweep")
        for kw in (dict(clip_norm=1.0), dict(momentum=0.9), dict(learning_rate="auto")):
            MinibatchSGDClassifier(max_iter=3, tol=None, **kw).fit(X, y)
        count("options outside the plain pass")
    print(json.dumps(counts))
""")


def test_options_do_not_multiply_compiled_specializations():
    proc = subprocess.run([sys.executable, "-c", SWEEP], capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # 3 losses x (dense per-sample, CSR minibatch); every option of the
    # sweep (8 of them) reuses those 6
    assert counts["classifier sweep"] == [6, 0]
    # one more loss (squared error), dense per-sample
    assert counts["regressor sweep"] == [7, 0]
    # clipping, momentum and 'auto' run the general pass, one
    # specialization each (they buffer the gradient or measure the step)
    assert counts["options outside the plain pass"] == [7, 3]
