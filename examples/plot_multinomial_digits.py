"""
=============================================
One-vs-rest or multinomial? Digits, both ways
=============================================

With ``multi_class="ovr"`` (the default, as in scikit-learn's SGD) each class
gets its own binary model; ``multi_class="multinomial"`` trains one joint
model: softmax cross-entropy for ``loss="log_loss"``, the multiclass SVM
loss of Weston & Watkins for ``loss="hinge"``. Both train all classes in
the same compiled pass. This compares them on the digits data, with
scikit-learn's exact multinomial ``LogisticRegression`` as the reference.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skgd import MinibatchSGDClassifier

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
alpha = 1e-2
common = dict(alpha=alpha, average=True, learning_rate="constant", eta0=0.003,
              max_iter=100, tol=None, random_state=0)

models = {
    "ovr log_loss": MinibatchSGDClassifier(loss="log_loss", **common),
    "multinomial log_loss": MinibatchSGDClassifier(loss="log_loss", multi_class="multinomial",
                                                   **common),
    "ovr hinge": MinibatchSGDClassifier(loss="hinge", **common),
    "multinomial hinge": MinibatchSGDClassifier(loss="hinge", multi_class="multinomial",
                                                **common),
}
exact = LogisticRegression(C=1 / (alpha * len(y_train)), max_iter=5000).fit(X_train, y_train)

names, accuracy, agreement = [], [], []
for name, model in models.items():
    model.fit(X_train, y_train)
    names.append(name)
    accuracy.append(model.score(X_test, y_test))
    agreement.append(np.mean(model.predict(X_test) == exact.predict(X_test)))
    line = (f"{name:22s} accuracy {accuracy[-1]:.3f}, "
            f"agrees with LogisticRegression {agreement[-1]:.3f}")
    if hasattr(model, "predict_proba"):
        line += f", test log loss {log_loss(y_test, model.predict_proba(X_test)):.3f}"
    print(line)
print(f"{'LogisticRegression':22s} accuracy {exact.score(X_test, y_test):.3f}, "
      f"test log loss {log_loss(y_test, exact.predict_proba(X_test)):.3f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
pos = np.arange(len(names))
ax.bar(pos - 0.2, accuracy, width=0.4, label="test accuracy")
ax.bar(pos + 0.2, agreement, width=0.4, label="agreement with LogisticRegression")
ax.set_xticks(pos, names, rotation=15)
ax.set_ylim(0.85, 1.0)
ax.set_ylabel("fraction")
ax.set_title("Digits: one-vs-rest against multinomial")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()
