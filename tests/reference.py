"""A slow, plain NumPy minibatch SGD: the algorithm as documented, with no
lazy scaling and no lazy averaging. The compiled engine must agree with it."""

import numpy as np

# DoG's first distance (Ivgi, Hinder & Carmon 2023: r_epsilon), as
# skgd.schedules documents 'auto': its steps grow from there
AUTO_FIRST_REACH = 1e-4


def reference_sgd(X, Y, sample_weight, orders, *, loss, dloss, lr, l2=0.0, l1=0.0,
                  batch_size=1, clip_norm=None, clip_value=None, average_start=0,
                  fit_intercept=True, step_caps=None, cap_floor=False, momentum=0.0,
                  nesterov=False, n_classes=None, pa_step=None, auto=None):
    """Run passes over ``orders`` (a list of row orders) and return
    ``(coef, intercept, avg_coef, avg_intercept)``.

    ``lr(t)`` is the per-sample rate at sample count ``t`` (from 1); a batch
    of ``m`` rows steps by ``m * lr(t + (m - 1) / 2)`` along its mean gradient,
    at most ``step_caps(m) = (weights' cap, intercepts' cap)`` when that is
    given (but, with ``cap_floor``, never less than the per-sample rate).

    ``loss(p, y)`` and ``dloss(p, y)`` take one output's score and target
    (``Y[i, k]``); given ``n_classes`` (a multinomial model, one output per
    class) they take the whole score vector and the class index ``Y[i, 0]``,
    and ``dloss`` returns the vector of derivatives.

    ``pa_step(loss, sq_norm)``, when given, makes the steps passive-aggressive
    (skgd.schedules): each row steps by its own ``tau = pa_step(its loss,
    |x|^2)`` along its (weighted) derivative, a batch by the mean of its
    rows' steps; the L2 decay keeps the rate ``lr``.

    ``auto = (row_sq, mu_max)`` runs 'auto' (skgd.schedules) in place of
    ``lr``: the per-sample rate of a batch is DoG's ``r / sqrt(G)``, ``r``
    the farthest the weights and intercepts have been from the origin (at
    least ``AUTO_FIRST_REACH``), ``G`` the sum of the squared weighted
    derivatives of every row seen so far times ``row_sq`` (the data's mean
    ``|x|^2``, plus 1 with an intercept); a full batch steps ``batch_size``
    times it under the caps (no floor), a shorter one ``m / batch_size`` of
    that; when the cap shortens the step, heavy-ball momentum ``mu = 1 -
    capped / wanted`` (at most ``mu_max``: 0 turns it off), the L2 decay at
    ``eta / (1 - mu)``; the average weighs the weights after sample ``s``
    by ``s ** 2``.
    """
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    n_out, n_features = n_classes or Y.shape[1], X.shape[1]
    W = np.zeros((n_out, n_features))
    b = np.zeros(n_out)
    q = np.zeros((n_out, n_features))  # L1 penalty applied so far
    u = 0.0
    W_sum = np.zeros_like(W)
    b_avg = np.zeros(n_out)
    n_avg = 0
    V = np.zeros_like(W)  # momentum of the weights and intercepts
    Vb = np.zeros(n_out)
    reach, grad_sq = 0.0, 0.0  # 'auto''s r and G
    t = 1
    for order in orders:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            m = len(rows)
            P = X[rows] @ W.T + b
            if n_classes:
                D = np.array([dloss(P[r], int(Y[i, 0])) for r, i in enumerate(rows)])
            else:
                D = np.array([[dloss(P[r, k], Y[i, k]) for k in range(n_out)]
                              for r, i in enumerate(rows)])
            D = D * sample_weight[rows][:, None]
            mu = momentum
            if auto is None:
                rate = lr(t + 0.5 * (m - 1))
                steps = m  # the per-sample steps a batch's step stands for
            else:
                row_sq, mu_max = auto
                grad_sq += (D ** 2).sum()
                reach = max(reach, np.sqrt((W ** 2).sum() + (b ** 2).sum()), AUTO_FIRST_REACH)
                rate = reach / np.sqrt(grad_sq * row_sq) if grad_sq > 0 else 0.0
                steps = batch_size  # a full batch's, shared out below (m / batch_size)
                wanted = batch_size * rate
                full = min(wanted, step_caps(batch_size)[0]) if step_caps else wanted
                mu = min(mu_max, 1.0 - full / wanted) if wanted > full else 0.0
            if pa_step is not None:
                # tau in place of the batch's step m * rate, which the
                # gradient step below multiplies back in
                sq_norms = (X[rows] ** 2).sum(axis=1)
                tau = np.array([[pa_step(loss(P[r, k], Y[i, k]), sq_norms[r])
                                 for k in range(n_out)] for r, i in enumerate(rows)])
                D = D * tau / (m * rate)
            G = D.T @ X[rows] / m
            gb = D.mean(axis=0) if fit_intercept else np.zeros(n_out)
            if clip_value:
                G = np.clip(G, -clip_value, clip_value)
                gb = np.clip(gb, -clip_value, clip_value)
            factor = 1.0
            if clip_norm:
                norm = np.sqrt((G ** 2).sum() + (gb ** 2).sum())
                if norm > clip_norm:
                    factor = clip_norm / norm
            eta = eta_b = steps * rate
            if step_caps is not None:
                # a gradient clipped by `factor` has its curvature scaled alike
                cap_w, cap_b = (c / factor for c in step_caps(steps))
                eta, eta_b = min(eta, cap_w), min(eta_b, cap_b)
                if cap_floor:
                    eta, eta_b = max(eta, rate), max(eta_b, rate)
            if auto:
                eta, eta_b = eta * m / batch_size, eta_b * m / batch_size
            # 'auto''s decay keeps pace with its momentum's long-run step
            W *= max(0.0, 1.0 - eta / (1.0 - mu if auto else 1.0) * l2)
            if mu or auto and auto[1]:
                V = mu * V - eta * factor * G
                Vb = mu * Vb - eta_b * factor * gb
                W += mu * V - eta * factor * G if nesterov else V
                b += mu * Vb - eta_b * factor * gb if nesterov else Vb
            else:
                W -= eta * factor * G
                b -= eta_b * factor * gb
            if l1:
                u += eta * l1
                cols = np.flatnonzero((X[rows] != 0).any(axis=0))
                for j in cols:
                    for k in range(n_out):
                        z = W[k, j]
                        if z > 0:
                            W[k, j] = max(0.0, z - (u + q[k, j]))
                        elif z < 0:
                            W[k, j] = min(0.0, z + (u - q[k, j]))
                        q[k, j] += W[k, j] - z
            if average_start and t + m - 1 >= average_start:
                weight = (t + m - 1.0) ** 2 if auto else 1.0
                n_avg += weight
                W_sum += weight * W
                b_avg += (b - b_avg) * weight / n_avg
            t += m
    avg = W_sum / n_avg if n_avg else None
    return W, b, avg, (b_avg if n_avg else None)
