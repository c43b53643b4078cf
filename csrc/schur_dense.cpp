// Two-way Schur complement S = D_B - C' D_A^{-1} C by dense rank-k updates.
//
// Algorithm: C is the n_A x n_B table of weights (C[a, b] = sum of w over the rows in cell
// (a, b)). Blocks of kRows A levels are filled into a dense kRows x n_Bp table (rows scaled by
// W_a^{-1/2}), and S_local -= T' T is a register-blocked symmetric rank-k update (4 x 8 tiles of
// the upper triangle, AVX2/FMA where the CPU has it, chosen at load time). The pair-by-pair
// assembly (schur_accum.hpp) costs sum_a k_a^2 / 2 scattered updates; this one costs
// n_A n_B^2 / 2 FMAs in cache-resident tiles, the faster one when most entities are seen in
// most periods (panels with hundreds of periods).
// Cost: one pass over the rows (the table fill) plus n_A n_B^2 / 2 FMAs.
// Determinism: a fixed number of chunks of A levels (from n_B and n_A only, never from the
// thread count), each with its own accumulator, added in chunk order: the same bits for any
// number of threads.
// Unweighted panels with at most one row per cell and few missing cells (schur_complement):
// S from the pairs of cells each A level LACKS, sum_a (n_B - k_a)^2 / 2 updates plus one pass
// over the rows into an n_A x n_B bit table (see the comment above schur_complement_impl).
// Naming: see common.hpp; _B arrays have one entry per level of B, n_Bp is n_B rounded up to 8.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.hpp"

namespace fastpanel {
namespace {

constexpr i64 kRows = 64;  // A levels per table block (the K dimension of each rank-k update)

typedef double v4d __attribute__((vector_size(32)));

// S[i, j] -= sum_r T[r, i] T[r, j] for the tiles of the upper triangle (i in blocks of 4, j in
// blocks of 8 from the block containing i). T is m x nbp row-major; it is first packed into
// panels of 8 columns (panel c holds T[r, 8c .. 8c + 7] for r = 0 .. m - 1, contiguous), so every
// tile streams two contiguous panels. S is nbp x nbp row-major.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void syrk_tiles(const double* T, i64 m, i64 nbp, double* S, double* panels) {
    const i64 n_panels = nbp / 8;
    for (i64 c = 0; c < n_panels; ++c)
        for (i64 r = 0; r < m; ++r) std::memcpy(panels + (c * m + r) * 8, T + r * nbp + c * 8, 8 * sizeof(double));
    for (i64 i0 = 0; i0 < nbp; i0 += 4) {
        const double* pi = panels + (i0 / 8) * m * 8 + (i0 % 8);
        for (i64 c = i0 / 8; c < n_panels; ++c) {
            const double* pj = panels + c * m * 8;
            v4d acc[4][2] = {};
            for (i64 r = 0; r < m; ++r) {
                v4d va, vb;
                __builtin_memcpy(&va, pj + r * 8, sizeof(va));
                __builtin_memcpy(&vb, pj + r * 8 + 4, sizeof(vb));
                const double* ci = pi + r * 8;
                for (int q = 0; q < 4; ++q) {
                    acc[q][0] += ci[q] * va;
                    acc[q][1] += ci[q] * vb;
                }
            }
            for (int q = 0; q < 4; ++q) {
                double* s = S + (i0 + q) * nbp + c * 8;
                for (int t = 0; t < 4; ++t) {
                    s[t] -= acc[q][0][t];
                    s[4 + t] -= acc[q][1][t];
                }
            }
        }
    }
}

template <bool Permuted, bool Weighted>
void schur_dense_impl(const i64* order_N, const i64* starts_G, i64 n_a, const i64* codes_b_N, i64 n_b,
                      const double* w_N, double* S_out /* n_b x n_b */) {
    const i64 nbp = (n_b + 7) / 8 * 8;
    // At most ~128 MB of accumulators and never more chunks than blocks of work.
    const i64 by_memory = std::max<i64>(1, (i64{1} << 24) / (nbp * nbp));
    const i64 n_blocks = (n_a + kRows - 1) / kRows;
    const i64 n_chunks = std::max<i64>(1, std::min<i64>({16, by_memory, n_blocks / 4 + 1}));
    std::vector<double> s_local(static_cast<size_t>(n_chunks) * nbp * nbp, 0.0);
    std::vector<double> d_local(static_cast<size_t>(n_chunks) * nbp, 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks > 1)
    for (i64 chunk = 0; chunk < n_chunks; ++chunk) {
        double* S = s_local.data() + static_cast<size_t>(chunk) * nbp * nbp;
        double* D = d_local.data() + static_cast<size_t>(chunk) * nbp;
        std::vector<double> T(static_cast<size_t>(kRows) * nbp, 0.0), panels(static_cast<size_t>(kRows) * nbp);
        const i64 blk_lo = n_blocks * chunk / n_chunks, blk_hi = n_blocks * (chunk + 1) / n_chunks;
        for (i64 blk = blk_lo; blk < blk_hi; ++blk) {
            const i64 g0 = blk * kRows, g1 = std::min(n_a, g0 + kRows);
            for (i64 g = g0; g < g1; ++g) {
                double* row = T.data() + (g - g0) * nbp;
                double total = 0.0;
                for (i64 k = starts_G[g]; k < starts_G[g + 1]; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    const double wi = Weighted ? w_N[i] : 1.0;
                    row[codes_b_N[i]] += wi;
                    D[codes_b_N[i]] += wi;
                    total += wi;
                }
                const double scale = total > 0.0 ? 1.0 / std::sqrt(total) : 0.0;
                for (i64 b = 0; b < n_b; ++b) row[b] *= scale;  // n_B per level: cheap next to the update
            }
            syrk_tiles(T.data(), g1 - g0, nbp, S, panels.data());
            std::fill(T.begin(), T.begin() + (g1 - g0) * nbp, 0.0);
        }
    }
    // Combine in chunk order, then S = D_B + (the upper triangle mirrored).
    for (i64 t = 1; t < n_chunks; ++t) {
        const double* S_t = s_local.data() + static_cast<size_t>(t) * nbp * nbp;
        const double* D_t = d_local.data() + static_cast<size_t>(t) * nbp;
        for (i64 q = 0; q < nbp * nbp; ++q) s_local[q] += S_t[q];
        for (i64 q = 0; q < nbp; ++q) d_local[q] += D_t[q];
    }
    for (i64 i = 0; i < n_b; ++i) {
        for (i64 j = i; j < n_b; ++j) {
            const double v = s_local[i * nbp + j] + (i == j ? d_local[i] : 0.0);
            S_out[i * n_b + j] = v;
            S_out[j * n_b + i] = v;
        }
    }
}

py::array_t<double> schur_dense(py::array_t<i64> order, py::array_t<i64> starts, py::array_t<i64> codes_b,
                                i64 n_b, py::array_t<double> weights) {
    const i64 n = codes_b.shape(0);
    const i64 n_a = starts.shape(0) - 1;
    if (codes_b.ndim() != 1 || starts.ndim() != 1 || n_a < 0 || n_b < 0)
        throw std::invalid_argument("schur_dense: codes_b and starts must be 1-D");
    const i64* st = starts.data();
    if (st[0] != 0 || st[n_a] != n) throw std::invalid_argument("schur_dense: starts must run from 0 to n");
    const bool permuted = order.shape(0) != 0;
    if (permuted && order.shape(0) != n) throw std::invalid_argument("schur_dense: order must have n entries");
    const bool weighted = weights.shape(0) != 0;
    if (weighted && weights.shape(0) != n) throw std::invalid_argument("schur_dense: weights must have n entries");
    py::array_t<double> out({n_b, n_b});
    const i64* ord = permuted ? order.data() : nullptr;
    const i64* cb = codes_b.data();
    const double* w = weighted ? weights.data() : nullptr;
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        if (permuted) {
            if (weighted) schur_dense_impl<true, true>(ord, st, n_a, cb, n_b, w, o);
            else schur_dense_impl<true, false>(ord, st, n_a, cb, n_b, w, o);
        } else {
            if (weighted) schur_dense_impl<false, true>(ord, st, n_a, cb, n_b, w, o);
            else schur_dense_impl<false, false>(ord, st, n_a, cb, n_b, w, o);
        }
    }
    return out;
}

// Unweighted panels whose entities are seen in most periods: with c_a = 1 - m_a (m_a the
// indicator of the B levels entity a lacks, each cell holding at most one row),
//     sum_a c_a c_a' / k_a = s 11' - 1 u' - u 1' + sum_a m_a m_a' / k_a,
// s = sum_a 1 / k_a, u = sum_a m_a / k_a, so only pairs of MISSING cells are visited:
// sum_a (n_B - k_a)^2 / 2 updates, instead of n_A n_B^2 / 2 FMAs. The cells are first marked in
// an n_A x n_B bit table in one pass over the rows in their own order (no gather through the
// sort permutation, which costs more than the rest on shuffled rows); each entity's missing
// levels are then read from its row of bits.
// Determinism: fixed chunks of A levels (from n_A and n_B only), each with its own
// accumulators, added in chunk order.
// Returns 0 (S written), 1 (a repeated cell) or 2 (a code out of range).
int schur_complement_impl(const i64* codes_a_N, const i64* codes_b_N, i64 n, i64 n_a, i64 n_b,
                          double* S_out /* n_b x n_b */) {
    const i64 words = (n_b + 63) / 64;
    std::vector<std::uint64_t> bits(static_cast<size_t>(n_a) * words, 0);
    std::vector<double> k_A(static_cast<size_t>(n_a), 0.0), D(static_cast<size_t>(n_b), 0.0);
    for (i64 i = 0; i < n; ++i) {
        const i64 a = codes_a_N[i], b = codes_b_N[i];
        if (a < 0 || a >= n_a || b < 0 || b >= n_b) return 2;  // checked here: one pass over the codes
        std::uint64_t& word = bits[static_cast<size_t>(a) * words + (b >> 6)];
        const std::uint64_t bit = std::uint64_t{1} << (b & 63);
        if (word & bit) return 1;
        word |= bit;
        k_A[a] += 1.0;
        D[b] += 1.0;
    }
    // Few accumulators: each is n_B^2 doubles, zeroed and added at the end (4 chunks keep two
    // cores busy with dynamic scheduling; a fixed count keeps the bits thread-independent).
    const i64 by_memory = std::max<i64>(1, (i64{1} << 24) / std::max<i64>(1, n_b * n_b));
    const i64 n_chunks = std::max<i64>(1, std::min<i64>({4, by_memory, n_a / 256 + 1}));
    const size_t nb2 = static_cast<size_t>(n_b) * n_b;
    std::vector<double> p_local(static_cast<size_t>(n_chunks) * nb2, 0.0);
    std::vector<double> u_local(static_cast<size_t>(n_chunks) * n_b, 0.0);
    std::vector<double> s_local(static_cast<size_t>(n_chunks), 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks > 1)
    for (i64 chunk = 0; chunk < n_chunks; ++chunk) {
        double* P = p_local.data() + static_cast<size_t>(chunk) * nb2;
        double* u = u_local.data() + static_cast<size_t>(chunk) * n_b;
        double s = 0.0;
        std::vector<i64> miss(static_cast<size_t>(n_b));
        const i64 g_lo = n_a * chunk / n_chunks, g_hi = n_a * (chunk + 1) / n_chunks;
        for (i64 g = g_lo; g < g_hi; ++g) {
            if (k_A[g] == 0.0) continue;  // not a level of the sample
            const double inv = 1.0 / k_A[g];
            const std::uint64_t* row = bits.data() + static_cast<size_t>(g) * words;
            i64 m = 0;
            for (i64 wd = 0; wd < words; ++wd) {
                std::uint64_t absent = ~row[wd];
                if (wd == words - 1 && (n_b & 63)) absent &= (std::uint64_t{1} << (n_b & 63)) - 1;
                for (; absent; absent &= absent - 1) miss[m++] = wd * 64 + __builtin_ctzll(absent);
            }
            s += inv;
            for (i64 q1 = 0; q1 < m; ++q1) {
                const i64 b1 = miss[q1];
                u[b1] += inv;
                double* prow = P + b1 * n_b;  // upper triangle: row b1, columns b2 >= b1
                for (i64 q2 = q1; q2 < m; ++q2) prow[miss[q2]] += inv;
            }
        }
        s_local[chunk] = s;
    }
    for (i64 t = 1; t < n_chunks; ++t) {
        const double* P_t = p_local.data() + static_cast<size_t>(t) * nb2;
        for (size_t q = 0; q < nb2; ++q) p_local[q] += P_t[q];
        for (i64 q = 0; q < n_b; ++q) u_local[q] += u_local[static_cast<size_t>(t) * n_b + q];
        s_local[0] += s_local[t];
    }
    const double s = s_local[0];
    for (i64 i = 0; i < n_b; ++i) {
        for (i64 j = i; j < n_b; ++j) {
            const double cc = s - u_local[i] - u_local[j] + p_local[i * n_b + j];
            const double v = (i == j ? D[i] : 0.0) - cc;
            S_out[i * n_b + j] = v;
            S_out[j * n_b + i] = v;
        }
    }
    return 0;
}

py::object schur_complement(py::array_t<i64> codes_a, i64 n_a, py::array_t<i64> codes_b, i64 n_b) {
    const i64 n = codes_b.shape(0);
    if (codes_a.ndim() != 1 || codes_b.ndim() != 1 || codes_a.shape(0) != n || n_a < 0 || n_b < 0)
        throw std::invalid_argument("schur_complement: codes_a and codes_b must be 1-D of one length");
    const i64* ca = codes_a.data();
    const i64* cb = codes_b.data();
    py::array_t<double> out({n_b, n_b});
    double* o = out.mutable_data();
    int status;
    {
        py::gil_scoped_release release;
        status = schur_complement_impl(ca, cb, n, n_a, n_b, o);
    }
    if (status == 2) throw std::invalid_argument("schur_complement: a code is out of range");
    if (status == 1) return py::none();
    return out;
}

}  // namespace

void register_schur_dense(py::module_& m) {
    m.def("within_schur_dense", &schur_dense, py::arg("order"), py::arg("group_starts"), py::arg("codes_b"),
          py::arg("n_b"), py::arg("weights"),
          "Two-way Schur complement S = D_B - C' D_A^{-1} C (n_b x n_b) by dense rank-k updates of "
          "blocks of the A x B weight table. Empty order: rows sorted by A; empty weights: unit "
          "weights. Bitwise independent of the thread count.");
    m.def("within_schur_complement", &schur_complement, py::arg("codes_a"), py::arg("n_a"), py::arg("codes_b"),
          py::arg("n_b"),
          "Unweighted two-way Schur complement from the pairs of missing cells of each A level "
          "(sum_a (n_B - k_a)^2 / 2 updates); None when a cell holds two rows. Bitwise independent "
          "of the thread count.");
}

}  // namespace fastpanel
