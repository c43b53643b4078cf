// Cluster score sums for OLS sandwich covariances.
//
// Algorithm: for clusters g with rows reached through order/group_starts (sorted data: no
// order), compute the residual u_i = y_i - x_i' beta on the fly and accumulate
// sum_{i in g} x_i u_i, together with sum_i u_i^2. One read of [y, X], no n x k score matrix
// and no residual vector: O(n k) time, O(G k) memory. Clusters are independent, so the loop
// over them is parallel without reductions (only the SSR is reduced).
//
// Naming: see common.hpp. Zyx is (n, 1 + k) column-major with y in column 0 and the k
// regressors after it; sums_GK is (n_groups, k) row-major.
#include <algorithm>
#include <vector>

#include "common.hpp"

namespace fastpanel {
namespace {

constexpr i64 kOlsParallelMin = 200000;

template <bool Permuted>
double cluster_scores_impl(const MatF Z, const double* beta_K, const i64* order_N, const i64* starts_G,
                           i64 n_groups, double* sums_GK) {
    const i64 n = Z.rows, k = Z.cols - 1;
    double ssr = 0.0;
#pragma omp parallel if (n * (k + 1) > kOlsParallelMin) reduction(+ : ssr)
    {
        std::vector<double> x(static_cast<size_t>(k));
#pragma omp for schedule(dynamic, 2048)
        for (i64 g = 0; g < n_groups; ++g) {
            double* out = sums_GK + g * k;
            for (i64 j = 0; j < k; ++j) out[j] = 0.0;
            for (i64 pos = starts_G[g]; pos < starts_G[g + 1]; ++pos) {
                const i64 i = Permuted ? order_N[pos] : pos;
                double u = Z.data[i];
                for (i64 j = 0; j < k; ++j) {
                    x[j] = Z.data[(j + 1) * n + i];
                    u -= x[j] * beta_K[j];
                }
                ssr += u * u;
                for (i64 j = 0; j < k; ++j) out[j] += x[j] * u;
            }
        }
    }
    return ssr;
}

py::tuple cluster_scores(py::array_t<double> Zyx, py::array_t<double> beta, py::array_t<i64> order,
                         py::array_t<i64> starts) {
    MatF z = mat_view(Zyx, "Zyx", false);
    if (z.cols < 1) throw std::invalid_argument("Zyx needs the dependent variable in column 0");
    const i64 k = z.cols - 1;
    const double* b = vec_view(beta, k, "beta");
    const bool permuted = vec_len(order) > 0;
    const i64* ord = permuted ? vec_view(order, z.rows, "order") : nullptr;
    const i64 n_starts = vec_len(starts);
    if (n_starts < 1) throw std::invalid_argument("group_starts must hold n_groups + 1 entries");
    const i64* st = vec_view(starts, n_starts, "group_starts");
    if (st[n_starts - 1] != z.rows) throw std::invalid_argument("group_starts must end at n");
    // Cheap validation (O(G) and one O(n) read of order) so that no index reaching the kernel
    // can leave Zyx, whatever arrays Python passes.
    if (st[0] < 0) throw std::invalid_argument("group_starts must start at a non-negative offset");
    for (i64 g = 0; g + 1 < n_starts; ++g)
        if (st[g + 1] < st[g]) throw std::invalid_argument("group_starts must be non-decreasing");
    if (permuted) {
        for (i64 i = 0; i < z.rows; ++i)
            if (ord[i] < 0 || ord[i] >= z.rows) throw std::invalid_argument("order holds a row index out of range");
    }
    py::array_t<double> sums({n_starts - 1, k});
    double* s = sums.mutable_data();
    double ssr;
    {
        py::gil_scoped_release release;
        ssr = permuted ? cluster_scores_impl<true>(z, b, ord, st, n_starts - 1, s)
                       : cluster_scores_impl<false>(z, b, ord, st, n_starts - 1, s);
    }
    return py::make_tuple(sums, ssr);
}

// sum_{lo <= i < hi} a_i b_i (sum of a_i when b is null) with kLanes independent partial sums:
// a single accumulator makes the loop wait on each addition's latency; kLanes of them (one
// vectorised inner loop of fixed order, so the result does not depend on the compiler's
// choice) keep the adders busy. The block is L1-resident, so this is what bounds the Gram.
constexpr int kLanes = 8;
inline double block_dot(const double* a, const double* b, i64 lo, i64 hi) {
    double acc[kLanes] = {0.0};
    i64 i = lo;
    if (b != nullptr) {
        for (; i + kLanes <= hi; i += kLanes)
            for (int u = 0; u < kLanes; ++u) acc[u] += a[i + u] * b[i + u];
    } else {
        for (; i + kLanes <= hi; i += kLanes)
            for (int u = 0; u < kLanes; ++u) acc[u] += a[i + u];
    }
    double tail = 0.0;
    for (; i < hi; ++i) tail += b != nullptr ? a[i] * b[i] : a[i];
    double total = 0.0;
    for (int u = 0; u < kLanes; ++u) total += acc[u];
    return total + tail;
}

// Column sums and cross-products Z'Z of a column-major (n, m) matrix in ONE read: rows are
// processed in cache-sized blocks, each block's columns multiplied while resident. O(n m^2)
// flops, one pass over memory (BLAS's Z'Z plus a separate column sum would read Z twice).
// Reproducible: the rows are cut into fixed chunks (not into one piece per thread), each
// chunk's partial sums go to a slot of its own, and the slots are added in chunk order, so
// the result is the same bits whatever the thread count or the schedule.
py::tuple gram(py::array_t<double> Z) {
    MatF z = mat_view(Z, "Z", false);
    const i64 n = z.rows, m = z.cols;
    py::array_t<double> sums(m), cross({m, m});
    double* s_out = sums.mutable_data();
    double* c_out = cross.mutable_data();
    {
        py::gil_scoped_release release;
        constexpr i64 kBlock = 512;           // rows of one cache-resident block
        constexpr i64 kChunk = 64 * kBlock;   // rows of one partial-sum slot
        const i64 n_chunks = n > 0 ? (n + kChunk - 1) / kChunk : 0;
        const i64 slot = m + m * m;
        std::vector<double> part(static_cast<size_t>(n_chunks * slot), 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (n * m > kOlsParallelMin)
        for (i64 c = 0; c < n_chunks; ++c) {
            double* s_c = part.data() + c * slot;
            double* c_c = s_c + m;
            const i64 c_hi = std::min(n, (c + 1) * kChunk);
            for (i64 lo = c * kChunk; lo < c_hi; lo += kBlock) {
                const i64 hi = std::min(c_hi, lo + kBlock);
                for (i64 a = 0; a < m; ++a) {
                    const double* za = z.data + a * n;
                    s_c[a] += block_dot(za, nullptr, lo, hi);
                    for (i64 b = 0; b <= a; ++b) c_c[a * m + b] += block_dot(za, z.data + b * n, lo, hi);
                }
            }
        }
        for (i64 a = 0; a < m; ++a) {
            s_out[a] = 0.0;
            for (i64 b = 0; b < m; ++b) c_out[a * m + b] = 0.0;
        }
        for (i64 c = 0; c < n_chunks; ++c) {
            const double* s_c = part.data() + c * slot;
            const double* c_c = s_c + m;
            for (i64 a = 0; a < m; ++a) {
                s_out[a] += s_c[a];
                for (i64 b = 0; b <= a; ++b) c_out[a * m + b] += c_c[a * m + b];
            }
        }
        for (i64 a = 0; a < m; ++a)
            for (i64 b = a + 1; b < m; ++b) c_out[a * m + b] = c_out[b * m + a];
    }
    return py::make_tuple(sums, cross);
}

// Copy 1-D float64 columns into consecutive columns of a column-major matrix, in parallel
// (a single-threaded copy leaves half the memory bandwidth of two cores unused).
void fill_columns(py::array_t<double> dst, py::list columns, i64 first) {
    MatF d = mat_view(dst, "dst");
    const i64 n_cols = static_cast<i64>(columns.size());
    if (first < 0 || first + n_cols > d.cols) throw std::invalid_argument("columns do not fit in dst");
    std::vector<const double*> src(static_cast<size_t>(n_cols));
    std::vector<py::array_t<double>> keep;  // hold references while the GIL is released
    for (i64 j = 0; j < n_cols; ++j) {
        keep.emplace_back(columns[static_cast<size_t>(j)].cast<py::array_t<double>>());
        src[static_cast<size_t>(j)] = vec_view(keep.back(), d.rows, "column");
    }
    py::gil_scoped_release release;
    constexpr i64 kChunk = 1 << 16;
    const i64 n_chunks = (d.rows + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static) if (d.rows * n_cols > kOlsParallelMin)
    for (i64 j = 0; j < n_cols; ++j) {
        for (i64 c = 0; c < n_chunks; ++c) {
            const i64 lo = c * kChunk, hi = lo + kChunk < d.rows ? lo + kChunk : d.rows;
            std::copy(src[static_cast<size_t>(j)] + lo, src[static_cast<size_t>(j)] + hi,
                      d.data + (first + j) * d.rows + lo);
        }
    }
}

}  // namespace

void register_ols(py::module_& m) {
    m.def("fill_columns", &fill_columns, py::arg("dst"), py::arg("columns"), py::arg("first"),
          "Copy 1-D float64 arrays into columns first, first+1, ... of a Fortran matrix (parallel).");
    m.def("ols_gram", &gram, py::arg("Z"),
          "(column sums, Z'Z) of a Fortran-ordered float64 matrix in one read.");
    m.def("ols_cluster_scores", &cluster_scores, py::arg("Zyx"), py::arg("beta"), py::arg("order"),
          py::arg("group_starts"),
          "Per-cluster sums of x_i u_i with u = y - X beta computed on the fly, and sum u_i^2.");
}

}  // namespace fastpanel
