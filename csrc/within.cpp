// Within (fixed-effects) transformation kernels.
//
// Algorithm
//   one-way : out = x - (weighted) group mean. Rows of a group are visited together (the data
//             are sorted by group, or reached through a counting-sort permutation), so each
//             group is summed and then written while its rows are still in cache: one read of
//             X and one write of out, O(n p).
//   two-way : groups A (the dimension with more levels, eliminated in closed form) and B
//             (fewer levels). The normal equations of x = alpha_A + gamma_B + e reduce, after
//             eliminating alpha, to the n_B x n_B Schur system
//                 S gamma = r,   S = D_B - C' D_A^{-1} C,   r = sum_obs w (x - xbar_A),
//             where C is the A x B table of weights. twoway_pass1 accumulates r (and S, which
//             depends only on the structure and the weights) in one read of X; Python solves the
//             small system; twoway_pass2 writes out = x - alpha_A - gamma_B with
//             alpha_a = xbar_a - sum_{rows of a} w gamma_B / W_a. Exact (no iteration):
//             O(n p + sum_a k_a^2 + n_B^3) with k_a the number of rows of group a.
//   Loops: with p <= 8 columns (the usual case) the p columns of a row are handled together,
//   p independent sums per group (with_columns, common.hpp); the sums still run over the rows
//   in order, so the bits are those of the column-at-a-time loops kept for larger p.
//   Rows in any order: see within_codes.cpp (unweighted panels, straight from the codes) and
//   within_rows.cpp (a radix partition instead of a gather).
//   Many-way transforms: see kway.cpp.
//
// Naming conventions: see common.hpp (_N observation arrays, _G group arrays, order_N,
// group_starts_G, column-major matrices). w_N empty means unit weights; order_N empty means the
// rows are already sorted by group.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common.hpp"
#include "schur_accum.hpp"

namespace fastpanel {
namespace {

// Below this many matrix entries a pass takes microseconds and waking threads costs more
// than it saves (and on a loaded machine a straggler thread can cost milliseconds).
constexpr i64 kParallelMin = 200000;
// Groups per scheduling chunk: dynamic scheduling keeps both cores busy when the machine is
// shared (a static split waits for the slowest thread), and chunks this large keep each
// thread streaming through contiguous memory.
constexpr i64 kGroupChunk = 2048;

// P > 0: the p columns of a row together, P independent sums (a group has ~10 rows: one
// column at a time is one dependent chain of adds per column, 1.6x slower single-threaded and
// at the mercy of code alignment); P = 0: any p, one column at a time. The sums run over the
// rows in the same order either way: the same bits.
template <int P, bool Permuted, bool Weighted>
void oneway_cols(const MatF X, MatF out, const i64* order_N, const i64* starts_G, i64 n_groups,
                 const double* w_N, i64* n_nonfinite) {
    const i64 n = X.rows, p = P > 0 ? P : X.cols;
    const double* xd = X.data;
    double* od = out.data;
    i64 bad = 0;
#pragma omp parallel for schedule(dynamic, kGroupChunk) reduction(+ : bad) if (n * p > kParallelMin)
    for (i64 g = 0; g < n_groups; ++g) {
        const i64 s = starts_G[g], e = starts_G[g + 1];
        double weight_sum = 0.0;
        if constexpr (Weighted) {
            for (i64 k = s; k < e; ++k) weight_sum += w_N[row_at<Permuted>(order_N, k)];
        } else {
            weight_sum = static_cast<double>(e - s);
        }
        if constexpr (P > 0) {
            double total[P] = {};
            for (i64 k = s; k < e; ++k) {
                const i64 i = row_at<Permuted>(order_N, k);
                const double wi = Weighted ? w_N[i] : 1.0;
                for (i64 j = 0; j < P; ++j) total[j] += Weighted ? wi * xd[j * n + i] : xd[j * n + i];
            }
            double mean[P];
            for (i64 j = 0; j < P; ++j) {
                // NaN/inf anywhere in the group makes its total non-finite: counting those
                // replaces a separate validation pass over X (the caller locates the rows)
                bad += !std::isfinite(total[j]);
                mean[j] = weight_sum > 0.0 ? total[j] / weight_sum : 0.0;
            }
            for (i64 k = s; k < e; ++k) {
                const i64 i = row_at<Permuted>(order_N, k);
                for (i64 j = 0; j < P; ++j) od[j * n + i] = xd[j * n + i] - mean[j];
            }
        } else {
            for (i64 j = 0; j < p; ++j) {
                const double* x = xd + j * n;
                double* o = od + j * n;
                double total = 0.0;
                for (i64 k = s; k < e; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    if constexpr (Weighted) total += w_N[i] * x[i]; else total += x[i];
                }
                bad += !std::isfinite(total);
                const double mean = weight_sum > 0.0 ? total / weight_sum : 0.0;
                for (i64 k = s; k < e; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    o[i] = x[i] - mean;
                }
            }
        }
    }
    *n_nonfinite = bad;
}

template <bool Permuted, bool Weighted>
void oneway_impl(const MatF X, MatF out, const i64* order_N, const i64* starts_G, i64 n_groups,
                 const double* w_N, i64* n_nonfinite) {
    with_columns(X.cols, [&](auto P) {
        oneway_cols<P, Permuted, Weighted>(X, out, order_N, starts_G, n_groups, w_N, n_nonfinite);
    });
}

template <int P, bool Permuted, bool Weighted>
void pass1_cols(const MatF X, const i64* order_N, const i64* starts_G, i64 n_groups,
                const i64* codes_b_N, i64 n_b, const double* w_N, bool want_schur,
                double* r_B /* n_b x p, column-major */, double* schur_BB /* n_b x n_b */) {
    const i64 n = X.rows, p = X.cols;
    // Fixed chunks of groups, each with its own accumulators, combined in chunk order: the sums
    // are then bitwise the same whatever the number of threads and however the scheduler hands
    // out the chunks (per-thread accumulators under dynamic scheduling were not). Fewer chunks
    // when the n_b x n_b Schur accumulators are large (n_b is small on this direct path).
    const i64 max_chunks = (want_schur && n_b > 256) ? 4 : 16;
    const i64 n_chunks = n * p > kParallelMin
        ? std::max<i64>(1, std::min<i64>(max_chunks, (n_groups + kGroupChunk - 1) / kGroupChunk)) : 1;
    // Unweighted groups with n_b <= 64 levels are summarised by the bit set of their B levels.
    const bool use_patterns = !Weighted && n_b <= 64;
    std::vector<double> r_local(static_cast<size_t>(n_chunks) * n_b * p, 0.0);
    std::vector<double> s_local(want_schur ? static_cast<size_t>(n_chunks) * n_b * n_b : 0, 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks > 1)
    for (i64 chunk = 0; chunk < n_chunks; ++chunk) {
        double* r_t = r_local.data() + static_cast<size_t>(chunk) * n_b * p;
        double* s_t = want_schur ? s_local.data() + static_cast<size_t>(chunk) * n_b * n_b : nullptr;
        std::vector<i64> b_buf;
        std::vector<double> w_buf;
        std::unordered_map<std::uint64_t, i64> patterns;
        const i64 g_lo = n_groups * chunk / n_chunks, g_hi = n_groups * (chunk + 1) / n_chunks;
        for (i64 g = g_lo; g < g_hi; ++g) {
            const i64 s = starts_G[g], e = starts_G[g + 1];
            double weight_sum = 0.0;
            if constexpr (Weighted) {
                for (i64 k = s; k < e; ++k) weight_sum += w_N[row_at<Permuted>(order_N, k)];
            } else {
                weight_sum = static_cast<double>(e - s);
            }
            if (want_schur) {
                const double inv_w = weight_sum > 0.0 ? 1.0 / weight_sum : 0.0;
                const i64 k_a = e - s;
                if (static_cast<i64>(b_buf.size()) < k_a) { b_buf.resize(k_a); w_buf.resize(k_a); }
                for (i64 k = 0; k < k_a; ++k) {
                    const i64 i = row_at<Permuted>(order_N, s + k);
                    b_buf[k] = codes_b_N[i];
                    w_buf[k] = Weighted ? w_N[i] : 1.0;
                }
                add_group_schur(s_t, n_b, b_buf.data(), w_buf.data(), k_a, inv_w, use_patterns, patterns);
            }
            if constexpr (P > 0) {  // the columns of a row together (see oneway_cols)
                const double* xd = X.data;
                double total[P] = {}, mean[P];
                for (i64 k = s; k < e; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    const double wi = Weighted ? w_N[i] : 1.0;
                    for (i64 j = 0; j < P; ++j) total[j] += Weighted ? wi * xd[j * n + i] : xd[j * n + i];
                }
                for (i64 j = 0; j < P; ++j) mean[j] = weight_sum > 0.0 ? total[j] / weight_sum : 0.0;
                for (i64 k = s; k < e; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    const double wi = Weighted ? w_N[i] : 1.0;
                    double* rb = r_t + codes_b_N[i];
                    for (i64 j = 0; j < P; ++j) rb[j * n_b] += wi * (xd[j * n + i] - mean[j]);
                }
            } else {
                for (i64 j = 0; j < p; ++j) {
                    const double* x = X.data + j * n;
                    double total = 0.0;
                    for (i64 k = s; k < e; ++k) {
                        const i64 i = row_at<Permuted>(order_N, k);
                        if constexpr (Weighted) total += w_N[i] * x[i]; else total += x[i];
                    }
                    const double mean = weight_sum > 0.0 ? total / weight_sum : 0.0;
                    double* r_col = r_t + j * n_b;
                    for (i64 k = s; k < e; ++k) {
                        const i64 i = row_at<Permuted>(order_N, k);
                        const double wi = Weighted ? w_N[i] : 1.0;
                        r_col[codes_b_N[i]] += wi * (x[i] - mean);
                    }
                }
            }
        }
        if (want_schur) expand_patterns(s_t, n_b, patterns);
    }
    combine_chunks(r_local, s_local, n_chunks, n_b, p, want_schur, r_B, schur_BB);
}

template <bool Permuted, bool Weighted>
void pass1_impl(const MatF X, const i64* order_N, const i64* starts_G, i64 n_groups,
                const i64* codes_b_N, i64 n_b, const double* w_N, bool want_schur,
                double* r_B, double* schur_BB) {
    with_columns(X.cols, [&](auto P) {
        pass1_cols<P, Permuted, Weighted>(X, order_N, starts_G, n_groups, codes_b_N, n_b, w_N, want_schur, r_B,
                                          schur_BB);
    });
}

template <int P, bool Permuted, bool Weighted>
void pass2_cols(const MatF X, MatF out, const i64* order_N, const i64* starts_G, i64 n_groups,
                const i64* codes_b_N, i64 n_b, const double* w_N, const double* gamma_B) {
    const i64 n = X.rows, p = X.cols;
#pragma omp parallel for schedule(dynamic, kGroupChunk) if (n * p > kParallelMin)
    for (i64 g = 0; g < n_groups; ++g) {
        const i64 s = starts_G[g], e = starts_G[g + 1];
        double weight_sum = 0.0;
        if constexpr (Weighted) {
            for (i64 k = s; k < e; ++k) weight_sum += w_N[row_at<Permuted>(order_N, k)];
        } else {
            weight_sum = static_cast<double>(e - s);
        }
        const double inv_w = weight_sum > 0.0 ? 1.0 / weight_sum : 0.0;
        if constexpr (P > 0) {  // the columns of a row together (see oneway_cols)
            const double* xd = X.data;
            double* od = out.data;
            double total[P] = {}, alpha[P];
            for (i64 k = s; k < e; ++k) {
                const i64 i = row_at<Permuted>(order_N, k);
                const double wi = Weighted ? w_N[i] : 1.0;
                const double* g = gamma_B + codes_b_N[i];
                for (i64 j = 0; j < P; ++j) total[j] += wi * (xd[j * n + i] - g[j * n_b]);
            }
            for (i64 j = 0; j < P; ++j) alpha[j] = total[j] * inv_w;  // mean over a of x - gamma_B
            for (i64 k = s; k < e; ++k) {
                const i64 i = row_at<Permuted>(order_N, k);
                const double* g = gamma_B + codes_b_N[i];
                for (i64 j = 0; j < P; ++j) od[j * n + i] = xd[j * n + i] - alpha[j] - g[j * n_b];
            }
        } else {
            for (i64 j = 0; j < p; ++j) {
                const double* x = X.data + j * n;
                const double* gamma = gamma_B + j * n_b;
                double* o = out.data + j * n;
                double total = 0.0;
                for (i64 k = s; k < e; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    const double wi = Weighted ? w_N[i] : 1.0;
                    total += wi * (x[i] - gamma[codes_b_N[i]]);
                }
                const double alpha = total * inv_w;  // alpha_a = mean over a of (x - gamma_B)
                for (i64 k = s; k < e; ++k) {
                    const i64 i = row_at<Permuted>(order_N, k);
                    o[i] = x[i] - alpha - gamma[codes_b_N[i]];
                }
            }
        }
    }
}

template <bool Permuted, bool Weighted>
void pass2_impl(const MatF X, MatF out, const i64* order_N, const i64* starts_G, i64 n_groups,
                const i64* codes_b_N, i64 n_b, const double* w_N, const double* gamma_B) {
    with_columns(X.cols, [&](auto P) {
        pass2_cols<P, Permuted, Weighted>(X, out, order_N, starts_G, n_groups, codes_b_N, n_b, w_N, gamma_B);
    });
}

struct GroupArgs {
    const i64* order_N;
    const i64* starts_G;
    i64 n_groups;
    const double* w_N;
    bool permuted;
    bool weighted;
};

GroupArgs group_args(const MatF& X, const py::array_t<i64>& order, const py::array_t<i64>& starts,
                     const py::array_t<double>& weights) {
    GroupArgs a{};
    const i64 n = X.rows;
    a.permuted = vec_len(order) > 0;
    a.order_N = a.permuted ? vec_view(order, n, "order") : nullptr;
    const i64 n_starts = vec_len(starts);
    if (n_starts < 1) throw std::invalid_argument("group_starts must hold n_groups + 1 entries");
    a.starts_G = vec_view(starts, n_starts, "group_starts");
    a.n_groups = n_starts - 1;
    if (a.starts_G[a.n_groups] != n) throw std::invalid_argument("group_starts must end at n");
    a.weighted = vec_len(weights) > 0;
    a.w_N = a.weighted ? vec_view(weights, n, "weights") : nullptr;
    return a;
}

// Dispatch a kernel template over (Permuted, Weighted).
template <template <bool, bool> class K, typename... Args>
void dispatch(const GroupArgs& a, Args&&... args) {
    if (a.permuted) {
        if (a.weighted) K<true, true>::run(args...); else K<true, false>::run(args...);
    } else {
        if (a.weighted) K<false, true>::run(args...); else K<false, false>::run(args...);
    }
}

template <bool P, bool W> struct OnewayK {
    template <typename... A> static void run(A... a) { oneway_impl<P, W>(a...); }
};
template <bool P, bool W> struct Pass1K {
    template <typename... A> static void run(A... a) { pass1_impl<P, W>(a...); }
};
template <bool P, bool W> struct Pass2K {
    template <typename... A> static void run(A... a) { pass2_impl<P, W>(a...); }
};

i64 oneway(py::array_t<double> X, py::array_t<double> out, py::array_t<i64> order,
           py::array_t<i64> starts, py::array_t<double> weights) {
    MatF x = mat_view(X, "X", false), o = mat_view(out, "out");
    if (x.rows != o.rows || x.cols != o.cols) throw std::invalid_argument("out must match X");
    const GroupArgs a = group_args(x, order, starts, weights);
    i64 n_nonfinite = 0;
    py::gil_scoped_release release;
    dispatch<OnewayK>(a, x, o, a.order_N, a.starts_G, a.n_groups, a.w_N, &n_nonfinite);
    return n_nonfinite;
}

py::tuple twoway_pass1(py::array_t<double> X, py::array_t<i64> order, py::array_t<i64> starts,
                       py::array_t<i64> codes_b, i64 n_b, py::array_t<double> weights,
                       bool want_schur) {
    MatF x = mat_view(X, "X", false);
    const GroupArgs a = group_args(x, order, starts, weights);
    const i64* cb = vec_view(codes_b, x.rows, "codes_b");
    py::array_t<double> r({n_b, x.cols}, {sizeof(double), sizeof(double) * n_b});
    const i64 s_dim = want_schur ? n_b : 0;
    py::array_t<double> schur({s_dim, s_dim}, {sizeof(double), sizeof(double) * s_dim});
    double* r_ptr = r.mutable_data();
    double* s_ptr = schur.mutable_data();
    std::fill(r_ptr, r_ptr + n_b * x.cols, 0.0);
    std::fill(s_ptr, s_ptr + s_dim * s_dim, 0.0);
    {
        py::gil_scoped_release release;
        dispatch<Pass1K>(a, x, a.order_N, a.starts_G, a.n_groups, cb, n_b, a.w_N, want_schur,
                         r_ptr, s_ptr);
    }
    return py::make_tuple(r, schur);
}

void twoway_pass2(py::array_t<double> X, py::array_t<double> out, py::array_t<i64> order,
                  py::array_t<i64> starts, py::array_t<i64> codes_b, py::array_t<double> gamma,
                  py::array_t<double> weights) {
    MatF x = mat_view(X, "X", false), o = mat_view(out, "out");
    if (x.rows != o.rows || x.cols != o.cols) throw std::invalid_argument("out must match X");
    MatF gm = mat_view(gamma, "gamma", false);
    if (gm.cols != x.cols) throw std::invalid_argument("gamma must have one column per column of X");
    const GroupArgs a = group_args(x, order, starts, weights);
    const i64* cb = vec_view(codes_b, x.rows, "codes_b");
    py::gil_scoped_release release;
    dispatch<Pass2K>(a, x, o, a.order_N, a.starts_G, a.n_groups, cb, gm.rows, a.w_N,
                     static_cast<const double*>(gm.data));
}

}  // namespace

void register_within(py::module_& m) {
    m.def("within_oneway", &oneway, py::arg("X"), py::arg("out"), py::arg("order"),
          py::arg("group_starts"), py::arg("weights"),
          "out = X - weighted group means (may alias X). Empty order: rows sorted by group; "
          "empty weights: unit weights. Returns the number of (group, column) totals that are "
          "not finite (0 when X holds no NaN/inf).");
    m.def("within_twoway_pass1", &twoway_pass1, py::arg("X"), py::arg("order"),
          py::arg("group_starts"), py::arg("codes_b"), py::arg("n_b"), py::arg("weights"),
          py::arg("want_schur"),
          "Accumulate r = sum w (x - xbar_A) by level of B and the Schur matrix "
          "S = D_B - C' D_A^{-1} C of the two-way normal equations.");
    m.def("within_twoway_pass2", &twoway_pass2, py::arg("X"), py::arg("out"), py::arg("order"),
          py::arg("group_starts"), py::arg("codes_b"), py::arg("gamma"), py::arg("weights"),
          "out = X - alpha_A - gamma_B given the solved B effects gamma (n_b x p).");
}

}  // namespace fastpanel
