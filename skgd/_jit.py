"""The numba options every compiled function of skgd's passes shares.

Importing this module guards numba's cache first (``skgd._numba_cache``):
that must happen before any of skgd's functions is decorated.
"""

from . import _numba_cache

_numba_cache.install()

# error_model="numpy": a division by zero gives inf or NaN (which the
# divergence check reports) instead of a Python exception, and the divisions
# carry no zero test.
_JIT = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy")

# A step called once per row at batch_size=1 that LLVM's own cost model
# leaves out of line (its loops, vectorised, look too big to inline) is
# marked ``alwaysinline``: a call there copies every array argument's
# struct onto the stack and, around it, increments and decrements each
# array's reference count with atomic operations, which the inlined code
# needs neither of (about 12 ms of a 44 ms dense epoch of 200k rows).
# numba's ``forceinline`` is LLVM's attribute, unlike ``inline='always'``
# (which retypes the callee in each caller and costs compile time).
_INLINE = dict(_JIT, forceinline=True)
# A helper compiled while inlining one inherits ``forceinline`` unless its own
# options set it (numba), and a helper is compiled once per signature, by
# whichever pass needs it first: every helper that both an inlined and a
# called step use states it, so the code built never depends on that order.
_CALL = dict(_JIT, forceinline=False)

# A step that adds to a running sum in a loop whose iterations LLVM could
# vectorise (no call or inner loop left in its body) keeps the sum in order
# without ``reassoc`` (which would let it sum in vector lanes): the same
# rounding as the loop that computes its terms in line (``contract`` still
# fuses ``s + a * b`` into one multiply-add in both).
_ORDERED = dict(_INLINE, fastmath={"contract"})
