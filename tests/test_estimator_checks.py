"""scikit-learn's estimator checks over the configurations users will run."""

from custom_losses import HalfSquared, UserLog
from sklearn.utils.estimator_checks import parametrize_with_checks

from skgd import MinibatchSGDClassifier, MinibatchSGDRegressor

C, R = MinibatchSGDClassifier, MinibatchSGDRegressor

ESTIMATORS = [
    # defaults (batch_size=1: scikit-learn's per-sample algorithm)
    C(),
    R(),
    # minibatches
    C(batch_size=32),
    C(batch_size=32, loss="modified_huber"),
    R(batch_size=64),
    # each loss family
    C(loss="log_loss"),
    C(loss="modified_huber"),
    C(loss="squared_hinge"),
    C(loss="perceptron"),
    R(loss="huber"),
    R(loss="epsilon_insensitive"),
    R(loss="squared_epsilon_insensitive"),
    # gradient clipping
    C(clip_norm=5.0),
    R(clip_value=0.5, batch_size=16),
    C(clip_norm=5.0, clip_value=1.0, batch_size=8),
    # penalties
    C(penalty="l1"),
    R(penalty="elasticnet", l1_ratio=0.5),
    # sparse-friendly: L1 zeros, averaging, wider batches
    C(penalty="elasticnet", batch_size=8, average=True, loss="modified_huber"),
    R(penalty="elasticnet", batch_size=64, average=10, learning_rate="constant"),
    C(learning_rate="adaptive", eta0=0.1, loss="log_loss"),
    C(learning_rate="adaptive", eta0=0.1, loss="modified_huber", batch_size=16),
    # multinomial training and user-defined losses
    C(multi_class="multinomial", loss="log_loss"),
    C(multi_class="multinomial", loss="hinge"),
    C(loss=UserLog()),
    R(loss=HalfSquared(), batch_size=8),
]

# The batch sizes users pick for speed, for each loss family, with and
# without clipping: on the checks' 20-50 rows a batch is the whole data, so
# an epoch is one step (the stopping rule's patience counts steps too: see
# skgd._stopping).
CLASSIFIER_LOSSES = ["hinge", "log_loss", "modified_huber", "squared_hinge"]
REGRESSOR_LOSSES = ["squared_error", "huber", "epsilon_insensitive",
                    "squared_epsilon_insensitive"]
ESTIMATORS += [C(loss=loss, batch_size=64) for loss in CLASSIFIER_LOSSES]
ESTIMATORS += [C(loss=loss, batch_size=256, clip_norm=5.0) for loss in CLASSIFIER_LOSSES]
ESTIMATORS += [C(loss="hinge", batch_size=64, clip_norm=5.0)]
ESTIMATORS += [R(loss=loss, batch_size=64) for loss in REGRESSOR_LOSSES]
ESTIMATORS += [R(loss=loss, batch_size=256, clip_norm=5.0) for loss in REGRESSOR_LOSSES]

# scikit-learn's own SGDClassifier / SGDRegressor fail these two as well:
# stochastic training with shuffled minibatches does not make a sample of
# weight 2 act exactly like two copies of it (the copies land in different
# minibatches and at different points of the schedule).
_WEIGHT_REASON = (
    "stochastic: a weight-2 sample is not exactly two copies, which land in "
    "different minibatches (scikit-learn's SGD estimators fail this too)"
)


# check_class_weight_classifiers weighs class 0 by 1000 and the others by
# 1e-4 on 50 noisy unscaled points. Clipping each sample's gradient (batch
# size 1) to the same norm undoes most of such weights, and the hinge
# objective of class 0's one-vs-rest problem then swings by +-50 from epoch
# to epoch: the tol rule (scikit-learn's, per class) stops that class after
# 44 epochs, at 60 % class-0 predictions where 87 % are required. With
# tol=None the same run reaches 100 %. Minibatches average the clipped
# gradients and pass (the batch_size 64 / 256 rows above).
_CLIPPED_PER_SAMPLE_REASON = (
    "per-sample clipping undoes class weights of 1000:1e-4 and the per-class "
    "tol rule stops class 0 on a noisy objective (60 % vs 87 % required; "
    "100 % with tol=None)"
)


def _expected_failures(estimator):
    failures = {
        "check_sample_weight_equivalence_on_dense_data": _WEIGHT_REASON,
        "check_sample_weight_equivalence_on_sparse_data": _WEIGHT_REASON,
    }
    if estimator.get_params().get("clip_norm") and estimator.batch_size == 1:
        failures["check_class_weight_classifiers"] = _CLIPPED_PER_SAMPLE_REASON
    return failures


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)
