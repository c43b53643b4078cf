// Assembly of the k-way fixed-effects Schur complement (fastpanel.kway), OpenMP.
//
// Algorithm: the within transform on k >= 3 dimensions eliminates the largest dimension A in
// closed form; the others, their levels stacked into one index space B of size n_B, solve
//     S b = r,   S = D_B' W D_B - M' W_A^{-1} M,   M = D_A' W D_B (the A x B weight table).
// kway_bipartite builds M (CSR, one row per A group, columns sorted) and W_A in one pass over
// the rows grouped by A: O(n m). kway_schur builds the upper triangle of S (CSR, b2 >= b,
// columns sorted; S is symmetric, the caller mirrors it) one B row at a time (Gustavson): row b
// of D_B' W D_B from the rows that carry b, then minus sum over the A groups a of b of
// (M[a,b] / W_a) M[a, b:]. Cost O(n m^2 + sum_a nnz(M[a])^2 / 2), memory O(nnz(S)); no
// n x n_B matrix is ever formed (SciPy's product path transposed the n x n_B dummy matrix and
// multiplied it: 5x slower, 3x the memory). The upper triangle also balances the threads: the
// levels with the most rows (years) come last in the stacked order and get the shortest rows.
// Rows of S are independent, so they run in parallel; each row's arithmetic is in a fixed order
// (rows of b ascending, then groups of b ascending), whatever the thread count.
//
// Naming: see common.hpp. codes_NM is the (n, m) C-ordered int64 table of stacked B levels
// (row i, dimension d at i * m + d); A groups are given by order_N / group_starts_G.
#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include "common.hpp"

namespace fastpanel {
namespace {

constexpr i64 kRowChunk = 64;  // S rows per scheduling chunk

py::tuple kway_bipartite(py::array_t<i64> order, py::array_t<i64> starts, py::array_t<i64> codes,
                         i64 m, i64 n_b, py::array_t<double> weights) {
    if (m < 1) throw std::invalid_argument("m must be at least 1");
    const i64 n_groups = starts.shape(0) - 1;
    const i64* starts_G = vec_view(starts, -1, "starts");
    const i64 n = starts_G[n_groups];
    const i64* codes_NM = vec_view(codes, n * m, "codes");
    const bool permuted = order.shape(0) > 0;
    const i64* order_N = permuted ? vec_view(order, n, "order") : nullptr;
    const bool weighted = weights.shape(0) > 0;
    const double* w_N = weighted ? vec_view(weights, n, "weights") : nullptr;

    // Slots: group a owns [m * starts_G[a], m * starts_G[a+1]) before compaction.
    std::vector<i64> slot_col(n * m);
    std::vector<double> slot_val(n * m);
    std::vector<i64> count(n_groups, 0);
    py::array_t<double> w_a(n_groups);
    double* W_A = w_a.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel if (n * m > 200000)
        {
            std::vector<i64> where(n_b, -1);  // slot of level b in the current group, or -1
            std::vector<std::pair<i64, double>> tmp;
#pragma omp for schedule(dynamic, 1024)
            for (i64 a = 0; a < n_groups; ++a) {
                const i64 base = m * starts_G[a];
                i64 c = 0;
                double total = 0.0;
                for (i64 k = starts_G[a]; k < starts_G[a + 1]; ++k) {
                    const i64 i = permuted ? order_N[k] : k;
                    const double wi = weighted ? w_N[i] : 1.0;
                    total += wi;
                    for (i64 d = 0; d < m; ++d) {
                        const i64 b = codes_NM[i * m + d];
                        if (where[b] < 0) {
                            where[b] = base + c;
                            slot_col[base + c] = b;
                            slot_val[base + c] = 0.0;
                            ++c;
                        }
                        slot_val[where[b]] += wi;
                    }
                }
                for (i64 s = base; s < base + c; ++s) where[slot_col[s]] = -1;
                // columns sorted within the row (a few dozen entries: insertion-sort cost)
                tmp.resize(c);
                for (i64 s = 0; s < c; ++s) tmp[s] = {slot_col[base + s], slot_val[base + s]};
                std::sort(tmp.begin(), tmp.end());
                for (i64 s = 0; s < c; ++s) {
                    slot_col[base + s] = tmp[s].first;
                    slot_val[base + s] = tmp[s].second;
                }
                count[a] = c;
                W_A[a] = total;
            }
        }
    }
    py::array_t<i64> indptr(n_groups + 1);
    i64* ip = indptr.mutable_data();
    ip[0] = 0;
    for (i64 a = 0; a < n_groups; ++a) ip[a + 1] = ip[a] + count[a];
    py::array_t<i64> indices(ip[n_groups]);
    py::array_t<double> data(ip[n_groups]);
    i64* idx = indices.mutable_data();
    double* val = data.mutable_data();
    {
        py::gil_scoped_release release;
#pragma omp parallel for schedule(static) if (n * m > 200000)
        for (i64 a = 0; a < n_groups; ++a) {
            const i64 base = m * starts_G[a];
            for (i64 s = 0; s < count[a]; ++s) {
                idx[ip[a] + s] = slot_col[base + s];
                val[ip[a] + s] = slot_val[base + s];
            }
        }
    }
    return py::make_tuple(indptr, indices, data, w_a);
}

py::tuple kway_schur(py::array_t<i64> m_indptr, py::array_t<i64> m_indices, py::array_t<double> m_data,
                     py::array_t<double> w_a, py::array_t<i64> codes, i64 m, i64 n_b,
                     py::array_t<double> weights) {
    const i64 n_groups = m_indptr.shape(0) - 1;
    const i64* mp = vec_view(m_indptr, n_groups + 1, "m_indptr");
    const i64* mi = vec_view(m_indices, mp[n_groups], "m_indices");
    const double* mv = vec_view(m_data, mp[n_groups], "m_data");
    const double* W_A = vec_view(w_a, n_groups, "w_a");
    const i64 nm = codes.shape(0);
    if (m < 1 || nm % m) throw std::invalid_argument("codes must hold n * m entries");
    const i64 n = nm / m;
    const i64* codes_NM = vec_view(codes, nm, "codes");
    const bool weighted = weights.shape(0) > 0;
    const double* w_N = weighted ? vec_view(weights, n, "weights") : nullptr;

    std::vector<i64> out_ptr(n_b + 1, 0);
    std::vector<std::vector<i64>> chunk_idx((n_b + kRowChunk - 1) / kRowChunk);
    std::vector<std::vector<double>> chunk_val(chunk_idx.size());
    {
        py::gil_scoped_release release;
        // Rows of the data carrying each level b (the D_B' W D_B part): flat positions i * m + d,
        // grouped by b in increasing order (counting sort, O(n m)).
        std::vector<i64> row_ptr(n_b + 1, 0), row_pos(nm);
        for (i64 k = 0; k < nm; ++k) ++row_ptr[codes_NM[k] + 1];
        std::partial_sum(row_ptr.begin(), row_ptr.end(), row_ptr.begin());
        {
            std::vector<i64> next(row_ptr.begin(), row_ptr.end() - 1);
            for (i64 k = 0; k < nm; ++k) row_pos[next[codes_NM[k]]++] = k;
        }
        // The groups of each b, laid out contiguously by b: the position of (a, b) in M, the
        // coefficient M[a,b] / W_a and the end of the group's row of M, so the row loop below
        // reads them as streams instead of chasing group -> weight -> row end through memory.
        // A group of zero weight has no equation: its end is set to its start.
        const i64 nnz_m = mp[n_groups];
        std::vector<i64> grp_ptr(n_b + 1, 0), grp_pos(nnz_m), grp_end(nnz_m);
        std::vector<double> grp_coef(nnz_m);
        for (i64 k = 0; k < nnz_m; ++k) ++grp_ptr[mi[k] + 1];
        std::partial_sum(grp_ptr.begin(), grp_ptr.end(), grp_ptr.begin());
        {
            std::vector<i64> next(grp_ptr.begin(), grp_ptr.end() - 1);
            for (i64 a = 0; a < n_groups; ++a) {
                const bool live = W_A[a] > 0.0;
                const double inv = live ? 1.0 / W_A[a] : 0.0;
                for (i64 k = mp[a]; k < mp[a + 1]; ++k) {
                    const i64 at = next[mi[k]]++;
                    grp_pos[at] = k;
                    grp_coef[at] = mv[k] * inv;
                    grp_end[at] = live ? mp[a + 1] : k;
                }
            }
        }
        const i64 n_chunks = static_cast<i64>(chunk_idx.size());
#pragma omp parallel if (n_b > 256)
        {
            std::vector<double> acc(n_b, 0.0);
            std::vector<char> seen(n_b, 0);
            std::vector<i64> cols;
#pragma omp for schedule(dynamic, 1)
            for (i64 c = 0; c < n_chunks; ++c) {
                std::vector<i64>& ci = chunk_idx[c];
                std::vector<double>& cv = chunk_val[c];
                const i64 b_end = std::min(n_b, (c + 1) * kRowChunk);
                for (i64 b = c * kRowChunk; b < b_end; ++b) {
                    cols.clear();
                    for (i64 k = row_ptr[b]; k < row_ptr[b + 1]; ++k) {
                        const i64 i = row_pos[k] / m;
                        const double wi = weighted ? w_N[i] : 1.0;
                        // dimensions after b's own carry larger stacked levels: upper triangle
                        for (i64 e = row_pos[k] % m; e < m; ++e) {
                            const i64 b2 = codes_NM[i * m + e];
                            if (!seen[b2]) { seen[b2] = 1; cols.push_back(b2); }
                            acc[b2] += wi;
                        }
                    }
                    for (i64 k = grp_ptr[b]; k < grp_ptr[b + 1]; ++k) {
                        // a group of zero weight has no equation: its end is its start
                        const double coef = grp_coef[k];
                        const i64 end = grp_end[k];
                        for (i64 q = grp_pos[k]; q < end; ++q) {  // sorted columns: b2 >= b
                            const i64 b2 = mi[q];
                            if (!seen[b2]) { seen[b2] = 1; cols.push_back(b2); }
                            acc[b2] -= coef * mv[q];
                        }
                    }
                    std::sort(cols.begin(), cols.end());
                    out_ptr[b + 1] = static_cast<i64>(cols.size());
                    for (i64 b2 : cols) {
                        ci.push_back(b2);
                        cv.push_back(acc[b2]);
                        acc[b2] = 0.0;
                        seen[b2] = 0;
                    }
                }
            }
        }
        std::partial_sum(out_ptr.begin(), out_ptr.end(), out_ptr.begin());
    }
    const i64 nnz = out_ptr[n_b];
    py::array_t<i64> indptr(n_b + 1), indices(nnz);
    py::array_t<double> data(nnz);
    std::copy(out_ptr.begin(), out_ptr.end(), indptr.mutable_data());
    i64* idx = indices.mutable_data();
    double* val = data.mutable_data();
    {
        py::gil_scoped_release release;
        const i64 n_chunks = static_cast<i64>(chunk_idx.size());
#pragma omp parallel for schedule(static) if (nnz > 200000)
        for (i64 c = 0; c < n_chunks; ++c) {
            const i64 at = out_ptr[c * kRowChunk];
            std::copy(chunk_idx[c].begin(), chunk_idx[c].end(), idx + at);
            std::copy(chunk_val[c].begin(), chunk_val[c].end(), val + at);
        }
    }
    return py::make_tuple(indptr, indices, data);
}

}  // namespace

void register_kway(py::module_& m) {
    m.def("kway_bipartite", &kway_bipartite, py::arg("order"), py::arg("starts"), py::arg("codes"), py::arg("m"),
          py::arg("n_b"), py::arg("weights"),
          "A x B weight table M (CSR, sorted columns) and the A-group weights W_A of the k-way design.");
    m.def("kway_schur", &kway_schur, py::arg("m_indptr"), py::arg("m_indices"), py::arg("m_data"), py::arg("w_a"),
          py::arg("codes"), py::arg("m"), py::arg("n_b"), py::arg("weights"),
          "Upper triangle (b2 >= b) of the Schur complement S = D_B' W D_B - M' W_A^-1 M of the k-way design (CSR, sorted columns).");
}

}  // namespace fastpanel
