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

}  // namespace

void register_ols(py::module_& m) {
    m.def("ols_cluster_scores", &cluster_scores, py::arg("Zyx"), py::arg("beta"), py::arg("order"),
          py::arg("group_starts"),
          "Per-cluster sums of x_i u_i with u = y - X beta computed on the fly, and sum u_i^2.");
}

}  // namespace fastpanel
