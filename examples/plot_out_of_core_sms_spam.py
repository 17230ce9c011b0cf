"""
=====================================================
Out-of-core text classification: the SMS Spam stream
=====================================================

A model trained by stochastic gradient descent never needs the whole data
set at once: :meth:`~skgd.MinibatchSGDClassifier.partial_fit` takes one
chunk, does one pass of minibatch SGD over it and forgets it. Together with
a *stateless* text vectorizer this learns from a stream of any length in
constant memory.

We stream the SMS Spam Collection (5,574 real text messages, about 13 %
spam, bundled as :func:`skgd.datasets.load_sms_spam`) in chunks of 250
messages. :class:`~sklearn.feature_extraction.text.HashingVectorizer` maps
each chunk to sparse features without a vocabulary (a hash of each token
picks its column), so it needs no fitting and no memory of earlier chunks.
After every chunk we measure accuracy on a held-out set of messages the
model never trains on.
"""

# %%
# The stream
# ----------
# A real stream arrives from a file, a socket or a queue; here a generator
# reads the bundled messages chunk by chunk. The first 1,000 messages of a
# shuffled order are held out for testing.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from skgd import MinibatchSGDClassifier
from skgd.datasets import load_sms_spam

texts, labels = load_sms_spam()
order = np.random.RandomState(0).permutation(len(texts))
test_idx, stream_idx = order[:1000], order[1000:]


def iter_chunks(indices, size):
    """Yield ``(messages, labels)`` chunks, as a stream would deliver them."""
    for start in range(0, len(indices), size):
        chunk = indices[start:start + size]
        yield [texts[i] for i in chunk], labels[chunk]


# %%
# Stateless features
# ------------------
# Word unigrams and bigrams, hashed into 2**18 columns. ``alternate_sign``
# is off so that counts stay non-negative, and each row is L2-normalised.

vectorizer = HashingVectorizer(
    n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm="l2"
)
X_test = vectorizer.transform([texts[i] for i in test_idx])
y_test = labels[test_idx]

# %%
# Learning from the stream
# ------------------------
# ``classes`` must be given on the first call: a chunk need not contain
# every label. Each call is a single pass over its chunk, so the batch size
# decides how many steps a chunk buys: 250 with ``batch_size=1``, 8 with
# ``batch_size=32``. We stream the same messages through both.

classes = np.array(["ham", "spam"])
chunk_size = 250
curves, models = {}, {}
for batch_size in (1, 32):
    clf = MinibatchSGDClassifier(
        loss="log_loss", alpha=1e-5, batch_size=batch_size, random_state=0
    )
    seen, accuracy = [0], [np.mean(y_test == "ham")]  # before any training
    for X_text, y_chunk in iter_chunks(stream_idx, chunk_size):
        clf.partial_fit(vectorizer.transform(X_text), y_chunk, classes=classes)
        seen.append(seen[-1] + len(X_text))
        accuracy.append(clf.score(X_test, y_test))
    curves[batch_size] = (seen, accuracy)
    models[batch_size] = clf
    print(f"batch_size={batch_size:>3}: test accuracy {accuracy[-1]:.3f} "
          f"after {seen[-1]} messages")

# %%
# Accuracy against messages seen
# ------------------------------
# The dashed line is the accuracy of always answering "ham", the majority
# class: a spam filter is useful only above it. Each point is one more chunk
# of 250 messages; memory use stays that of one chunk however long the
# stream runs.

fig, ax = plt.subplots(figsize=(7, 4))
for batch_size, (seen, accuracy) in curves.items():
    ax.plot(seen, accuracy, marker=".", label=f"batch_size={batch_size}")
ax.axhline(np.mean(y_test == "ham"), color="grey", linestyle="--",
           label='always "ham"')
ax.set_xlabel("messages seen")
ax.set_ylabel("held-out accuracy")
ax.set_title("SMS Spam Collection, streamed in chunks of 250")
ax.legend(loc="center right")
fig.tight_layout()
plt.show()

# %%
# What the model learned
# ----------------------
# The features are hashed, so columns have no names; hashing the words we
# care about gives their columns back. Positive weights push towards spam
# (the model streamed with ``batch_size=1``).

words = ["free", "win", "prize", "txt", "call", "ok", "later", "love"]
columns = vectorizer.transform(words).indices
weights = models[1].coef_[0, columns]
for word, weight in sorted(zip(words, weights, strict=True), key=lambda item: -item[1]):
    print(f"{word:>6}: {weight:+.2f}")
