"""The k-way Schur assembly kernels (``kernels.kway_cpp``, ``kernels.kway_numba``; issue 9).

Oracle: the Schur complement written out with dense NumPy from its definition,
S = D_B' W D_B - D_B' W D_A (D_A' W D_A)^{-1} D_A' W D_B, on explicit dummy matrices, for
random designs with rows in random order, weights (some zero, and a whole group of zero
weight), levels that appear in one dimension only a few times, and 2 to 4 dimensions.
Both backends must give the oracle's numbers (1e-12) and each other's (bitwise: every entry is
summed in the same order), and the upper-triangle output must mirror to a symmetric matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpanel._backend import available_backends
from fastpanel.factor import factorize
from fastpanel.kway import bipartite_table, build_structure, schur_is_sparse

BACKENDS = [b for b in ("cpp", "numba") if available_backends()[b][0]]


def kernels(name):
    import importlib

    return importlib.import_module(f"fastpanel.kernels.kway_{name}")


def dense_schur(A_codes, B_codes_list, w):
    """S from its definition on dense dummies (B dimensions stacked in the given order)."""
    n = A_codes.size
    DA = np.zeros((n, A_codes.max() + 1))
    DA[np.arange(n), A_codes] = 1.0
    DB = np.hstack([np.eye(c.max() + 1)[c] for c in B_codes_list])
    W = np.diag(w)
    WA = DA.T @ W @ DA
    inv = np.diag(np.where(np.diag(WA) > 0, 1.0 / np.where(np.diag(WA) > 0, np.diag(WA), 1.0), 0.0))
    return DB.T @ W @ DB - DB.T @ W @ DA @ inv @ DA.T @ W @ DB, DA.T @ W @ DB


def random_design(rng, n, m, weighted):
    """A with many small groups, m other dimensions of decreasing size, rows shuffled."""
    sizes = sorted(rng.integers(2, max(3, n // 6), m), reverse=True)
    A = rng.integers(0, max(2, n // 3), n)
    Bs = [rng.integers(0, s, n) for s in sizes]
    w = None
    if weighted:
        w = rng.uniform(0.2, 3.0, n)
        w[rng.uniform(size=n) < 0.1] = 0.0
        w[A == A[0]] = 0.0  # a whole group of zero weight
    return A, Bs, w


def assemble(name, A, Bs, w):
    factors = [factorize(A, "a")] + [factorize(b, f"b{j}") for j, b in enumerate(Bs)]
    table = bipartite_table(factors, w, kernels(name))
    wa = np.empty(0) if w is None else w
    ptr, idx, val = kernels(name).schur(table.M.indptr, table.M.indices, table.M.data, table.W_A,
                                        table.B_codes.ravel(), table.B_codes.shape[1], table.n_B, wa)
    U = sp.csr_matrix((val, idx, ptr), shape=(table.n_B, table.n_B))
    return table, U


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 160), m=st.integers(1, 3), weighted=st.booleans())
def test_schur_equals_the_dense_definition(name, seed, n, m, weighted):
    rng = np.random.default_rng(seed)
    A, Bs, w = random_design(rng, n, m, weighted)
    table, U = assemble(name, A, Bs, w)
    assert table.A.name == "a" or table.A.n_levels >= max(b.n_levels for b in table.B)
    # the oracle in the kernel's own stacking order (largest dimension eliminated)
    factors = [table.A, *table.B]
    S_ref, M_ref = dense_schur(factors[0].codes, [f.codes for f in factors[1:]], np.ones(n) if w is None else w)
    assert sp.triu(U, k=0).nnz == U.nnz  # upper triangle only
    for row in range(table.n_B):  # columns sorted within each row
        cols = U.indices[U.indptr[row]:U.indptr[row + 1]]
        assert np.all(np.diff(cols) > 0)
    S = (U + sp.triu(U, k=1).T).toarray()
    scale = max(1.0, np.abs(S_ref).max())
    np.testing.assert_allclose(S, S_ref, atol=1e-12 * scale, rtol=0)
    np.testing.assert_allclose(table.M.toarray(), M_ref, atol=1e-12 * scale, rtol=0)
    np.testing.assert_allclose(table.W_A, np.bincount(factors[0].codes, weights=None if w is None else w,
                                                      minlength=factors[0].n_levels), rtol=1e-13)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs the cpp and numba backends")
@pytest.mark.parametrize("weighted", [False, True])
def test_backends_give_the_same_bits(weighted):
    rng = np.random.default_rng(3)
    A, Bs, w = random_design(rng, 20_000, 3, weighted)
    (t1, U1), (t2, U2) = assemble("cpp", A, Bs, w), assemble("numba", A, Bs, w)
    for a, b in ((t1.M, t2.M), (U1, U2)):
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(t1.W_A, t2.W_A)


@pytest.mark.parametrize("name", BACKENDS)
def test_thread_count_does_not_change_the_bits(name):
    import fastpanel

    rng = np.random.default_rng(4)
    A, Bs, w = random_design(rng, 30_000, 2, True)
    before = fastpanel.get_num_threads()
    try:
        fastpanel.set_num_threads(1)
        _, U1 = assemble(name, A, Bs, w)
        fastpanel.set_num_threads(2)
        _, U2 = assemble(name, A, Bs, w)
    finally:
        fastpanel.set_num_threads(before)
    np.testing.assert_array_equal(U1.data, U2.data)


def test_sampled_density_tells_weak_from_well_connected_designs():
    n = 60_000
    indiv = np.repeat(np.arange(n // 10), 10)
    year = np.tile(np.arange(10), n // 10)
    n_firm = round(n / 10 / 23)
    rng = np.random.default_rng(0)
    weak = [factorize(indiv), factorize(np.arange(n) % n_firm), factorize(year)]
    dense = [factorize(indiv), factorize(rng.integers(0, n_firm, n)), factorize(year)]
    assert bipartite_table(weak, None).schur_is_sparse()
    assert not bipartite_table(dense, None).schur_is_sparse()
    # the same count from the factors alone (no A x B table), also with rows shuffled
    perm = rng.permutation(n)
    assert schur_is_sparse(weak) and not schur_is_sparse(dense)
    assert schur_is_sparse([factorize(f.codes[perm]) for f in weak])
    assert not schur_is_sparse([factorize(f.codes[perm]) for f in dense])
    # and the structure picks the matching solver
    assert build_structure(weak, None).method == "kway-direct"
