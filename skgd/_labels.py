"""A classifier's labels: checked, encoded as indices into ``classes_``,
weighted by class, and turned into the engine's targets."""

import numpy as np
from sklearn.utils.multiclass import check_classification_targets

from ._validation import check_weight_magnitude


def with_class_weights(sample_weight, class_weights, idx):
    """Sample weights times the class weight of each sample's class."""
    sw = sample_weight * class_weights[idx]
    if not sw.any():
        raise ValueError(
            "class_weight gives weight zero to every class present in y: nothing to "
            "learn from."
        )
    check_weight_magnitude(sw, "class_weight times sample_weight")
    return sw


def encode_labels(y):
    """The sorted classes of the validated labels ``y``, and the index of each
    label among them.

    Integer (or boolean) labels of a small range are counted rather than
    sorted, which costs a pass over ``y`` instead of two sorts (a few
    milliseconds on 10^5 labels); such labels are always a classification
    target, so scikit-learn's check of the target type has nothing to say.
    """
    if y.dtype.kind in "iub" and y.size:
        low, high = int(y.min()), int(y.max())
        if high - low <= max(y.size, 1024):
            # in a type that holds the differences (int8 spans 255, uint64
            # labels may exceed int64)
            wide = y.astype(np.uint64 if y.dtype == np.uint64 else np.int64)
            shifted = (wide - wide.dtype.type(low)).astype(np.intp)
            present = np.flatnonzero(np.bincount(shifted, minlength=high - low + 1))
            index = np.zeros(high - low + 1, dtype=np.intp)
            index[present] = np.arange(present.size)
            classes = present.astype(wide.dtype) + wide.dtype.type(low)
            return classes.astype(y.dtype), index[shifted]
    check_classification_targets(y)
    classes = np.unique(y)
    return classes, np.searchsorted(classes, y)


def check_classes(classes):
    """The sorted unique labels of ``classes``, or an error naming it: labels
    must be all numbers (finite) or all strings, in a 1-d array-like."""
    if isinstance(classes, (list, tuple)):
        classes = np.asarray(classes, dtype=object)  # keep each label's own type
    values = np.asarray(classes)
    if values.ndim != 1:
        raise ValueError(
            f"classes must be a 1-d array-like of labels; got shape {values.shape}."
        )
    if values.dtype.kind == "O":
        items = values.tolist()
        if any(v is None for v in items):
            raise ValueError(f"classes must not contain None; got {items!r}.")
        check_one_label_type(items, "classes")
        values = np.asarray(items)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        raise ValueError(f"classes must be finite; got {values.tolist()}.")
    return np.unique(values)


def same_classes(classes, known):
    """Whether the labels of ``classes`` are those of ``known`` (sorted and
    distinct, as ``classes_``). A stream usually passes the same sorted
    labels on every call: compared as they are, they need not be sorted
    again."""
    if (isinstance(classes, np.ndarray) and classes.dtype == known.dtype
            and classes.shape == known.shape and (classes == known).all()):
        return True
    return np.array_equal(np.unique(classes), known)


def check_one_label_type(items, name):
    """Raise a TypeError naming the mix when labels are not all numbers or
    all strings (NumPy would compare them and fail obscurely)."""
    numbers = [isinstance(v, (bool, int, float, np.bool_, np.number)) for v in items]
    strings = [isinstance(v, str) for v in items]
    if all(numbers) or all(strings) or not all(n or s for n, s in zip(numbers, strings,
                                                                       strict=True)):
        return  # one type; or other objects (None, ...), which scikit-learn refuses
    kinds = sorted({type(v).__name__ for v in items})
    shown = items[:10]
    raise TypeError(
        f"{name} mixes label types ({', '.join(kinds)}): {shown!r}"
        f"{' ...' if len(items) > 10 else ''}. Labels must be all numbers or all "
        "strings; convert them to one type (e.g. y.astype(str))."
    )


def label_index(y, classes):
    """Index of each label in the sorted ``classes``; a clear error for others."""
    try:
        idx = classes.searchsorted(y)
        known = classes[np.minimum(idx, classes.size - 1)] == y
    except TypeError:  # labels that do not even compare with the classes (None, ...)
        listed = classes.tolist()
        found = [[i for i, c in enumerate(listed) if c == v] for v in y.tolist()]
        known = np.array([bool(f) for f in found])
        idx = np.array([f[0] if f else 0 for f in found], dtype=np.intp)
    if not known.all():
        unknown = y[~known]
        try:
            shown = str(np.unique(unknown).tolist())
        except TypeError:
            shown = "[" + ", ".join(sorted({repr(v) for v in unknown.tolist()})) + "]"
        raise ValueError(
            f"y contains labels not in `classes`: {shown} "
            f"(classes are {classes.tolist()})."
        )
    return idx


def one_vs_rest_targets(idx, n_classes):
    """+1/-1 targets from class indices: one column per class (one for two)."""
    if n_classes == 2:
        return np.where(idx == 1, 1.0, -1.0).reshape(-1, 1)
    Y = np.full((idx.shape[0], n_classes), -1.0)
    Y[np.arange(idx.shape[0]), idx] = 1.0
    return Y
