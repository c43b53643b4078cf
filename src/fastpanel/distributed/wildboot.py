"""The wild cluster bootstrap of a fit on Dask: every statistic it needs, per (entity, period) cell.

Algorithm
---------
Every quantity of the in-memory bootstrap (:mod:`fastpanel.ols.wildboot`) is a sum, over the
rows of a group at least as coarse as an (entity, period) cell, of a product of two columns of
``M = [X, y, sqrt(w)]`` (transformed, ``sqrt(w)``-scaled regressors and outcome, and the root
weights): the score sums ``X'(y - X b)``, the Gram blocks ``X'X``, the level sums
``sqrt(w)'(y - X b)`` and ``sqrt(w)'X`` of the effects' level space, the weighted counts
``sqrt(w)'sqrt(w)``. So each cell's ``(k + 2) x (k + 2)`` Gram matrix ``M_c'M_c`` is all that
matters, and any ``m x (k + 2)`` matrix ``P_c`` with ``P_c'P_c = M_c'M_c`` (``P_c = sqrt(L) Q'``
from its eigen-decomposition, m <= k + 2 "pseudo-rows") gives the same statistics to rounding.
Each partition (whole entities, after the fit's shuffle) returns the pseudo-rows of its cells
with their entity labels and period codes; the client runs the in-memory algorithm on them.
The weights are keyed by the entity labels, so the draws equal those of the in-memory fit.

Cost: one more read and shuffle of the data, O(n (k + 2)^2) per partition, and
O(cells (k + 2)^2) numbers to the client: small when cells hold many rows (a few clusters of
large entities); the round refuses more than ``MAX_PSEUDO_ROWS`` pseudo-rows.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

__all__ = ["cell_recipe", "pseudo_rows", "MAX_PSEUDO_ROWS"]

#: pseudo-rows the client accepts (each k + 2 numbers)
MAX_PSEUDO_ROWS = 5_000_000


def pseudo_rows(M: np.ndarray, cells: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-rows, their cell) with the same per-cell Gram matrices as the rows of ``M``."""
    p = M.shape[1]
    G = np.zeros((n_cells, p, p))
    np.add.at(G, cells, M[:, :, None] * M[:, None, :])
    # equilibrated first (G = D C D, D the columns' root sums of squares), so each column's sums
    # keep their own relative precision whatever the scales of the others
    d = np.sqrt(np.maximum(np.einsum("cii->ci", G), np.finfo(float).tiny))
    C = G / (d[:, :, None] * d[:, None, :])
    evals, evecs = np.linalg.eigh(C)
    # eigenvalues below rounding are zero: no pseudo-row for them
    keep = evals > np.maximum(evals[:, -1:], 0.0) * (p * 1e-15)
    rows = np.sqrt(np.where(keep, evals, 0.0))[:, :, None] * np.swapaxes(evecs, 1, 2) * d[:, None, :]
    cell_idx = np.repeat(np.arange(n_cells), p).reshape(n_cells, p)
    return rows[keep], cell_idx[keep]


def _cells(part: Any, sp: Any, history: list, center: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray,
           kept: list[int]) -> dict:
    from fastpanel.distributed.ols import _transformed

    Zt, c = _transformed(part, sp, history, center, gamma)
    n = Zt.shape[0]
    if n == 0:
        return {"rows": np.zeros((0, len(kept) + 2)), "entity": np.zeros(0, dtype=object), "period": np.zeros(0, int)}
    labels = part[sp.entity].to_numpy()[c["keep"]]
    X = Zt[:, 1:][:, kept]
    sw = np.ones(n) if c["w"] is None else np.sqrt(c["w"])
    M = np.column_stack([X, Zt[:, 0], sw])
    ent = c["ent"]
    per = c["per"] if sp.period else np.zeros(n, dtype=np.int64)
    n_t = sp.periods.size if sp.period else 1
    flat = ent.codes * np.int64(n_t) + per
    uniq, first, inv = np.unique(flat, return_index=True, return_inverse=True)
    rows, cell = pseudo_rows(M, inv.ravel(), uniq.size)
    return {"rows": rows, "entity": labels[first][cell], "period": per[first][cell]}


def _collect(dask: Any, source: Any, entity: str, sp: Any, history: list, center: np.ndarray,
             gamma: np.ndarray | None, beta: np.ndarray, kept: list[int]) -> dict:
    from fastpanel.distributed.ols import _run

    parts = _run(dask, source.shuffle(on=entity), _cells, sp, history, center, gamma, beta, kept)
    total = sum(p["rows"].shape[0] for p in parts)
    if total > MAX_PSEUDO_ROWS:
        raise ValueError(
            f"the wild bootstrap on Dask brings {len(kept) + 2} numbers per (entity, period) cell and regressor to the "
            f"client: {total:,} pseudo-rows here, more than {MAX_PSEUDO_ROWS:,}; with this many clusters the bootstrap "
            "is not the tool (its cost per draw grows with the square of the clusters): use the CRV1 inference")
    return {"rows": np.vstack([p["rows"] for p in parts]),
            # labels keep their dtype (the weights are keyed by value for integers, by text otherwise)
            "entity": np.concatenate([np.asarray(p["entity"]) for p in parts if p["rows"].shape[0]]),
            "period": np.concatenate([p["period"] for p in parts if p["rows"].shape[0]]).astype(np.int64),
            "periods": sp.periods, "entity_name": sp.entity, "period_name": sp.period}


def cell_recipe(dask: Any, source: Any, sp: Any, history: list, center: np.ndarray, gamma: np.ndarray | None,
                beta: np.ndarray, kept: list[int]) -> Any:
    """A function of no arguments that runs the cell round (the fit keeps it, not the data)."""
    return partial(_collect, dask, source, sp.entity, sp, list(history), np.asarray(center),
                   None if gamma is None else np.asarray(gamma), np.asarray(beta), list(kept))
