// One-way demeaning straight from the codes, rows in any order (scatter, then gather).
//
// Algorithm: pass 1 streams the rows in input order and adds w x (and w) into a per-level
// table (levels x (p + 1)); pass 2 streams them again and writes x - mean[level]. Used for the
// sweeps of alternating projections on rows not sorted by the dimension, where gathering the
// rows of each level through the sort permutation reads X at random (one cache miss per row and
// column; the tables here are small and stay in cache).
// Cost: two streamed reads of X, one write, two table accesses per row.
// Determinism: a fixed number of row chunks (from n, p and the table size, never from the
// thread count), each with its own table, added in chunk order.
// Naming: see common.hpp; _L arrays have one entry per level.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.hpp"

namespace fastpanel {
namespace {

template <bool Weighted>
i64 oneway_scatter_impl(const MatF X, MatF out, const i64* codes_N, i64 n_levels, const double* w_N) {
    const i64 n = X.rows, p = X.cols, width = p + 1;
    const i64 table = n_levels * width;
    const i64 by_memory = std::max<i64>(1, (i64{1} << 25) / std::max<i64>(table, 1));  // <= 256 MB
    const i64 n_chunks = std::max<i64>(1, std::min<i64>({16, by_memory, n / 65536 + 1}));
    std::vector<double> tabs(static_cast<size_t>(n_chunks) * table, 0.0);
#pragma omp parallel for schedule(static, 1) if (n_chunks > 1)
    for (i64 c = 0; c < n_chunks; ++c) {
        double* t = tabs.data() + static_cast<size_t>(c) * table;
        const i64 lo = n * c / n_chunks, hi = n * (c + 1) / n_chunks;
        for (i64 i = lo; i < hi; ++i) {
            double* row = t + codes_N[i] * width;
            const double wi = Weighted ? w_N[i] : 1.0;
            row[p] += wi;
            for (i64 j = 0; j < p; ++j) row[j] += Weighted ? wi * X.data[j * n + i] : X.data[j * n + i];
        }
    }
    double* total = tabs.data();
    for (i64 c = 1; c < n_chunks; ++c) {
        const double* t = tabs.data() + static_cast<size_t>(c) * table;
        for (i64 q = 0; q < table; ++q) total[q] += t[q];
    }
    i64 bad = 0;
    for (i64 l = 0; l < n_levels; ++l) {
        double* row = total + l * width;
        const double wsum = row[p];
        for (i64 j = 0; j < p; ++j) {
            row[j] = wsum > 0.0 ? row[j] / wsum : 0.0;
            if (!std::isfinite(row[j])) ++bad;
        }
    }
#pragma omp parallel for schedule(static) if (n * p > 65536)
    for (i64 i = 0; i < n; ++i) {
        const double* row = total + codes_N[i] * width;
        for (i64 j = 0; j < p; ++j) out.data[j * n + i] = X.data[j * n + i] - row[j];
    }
    return bad;
}

i64 oneway_scatter(py::array_t<double> X, py::array_t<double> out, py::array_t<i64> codes, i64 n_levels,
                   py::array_t<double> weights) {
    MatF x = mat_view(X, "X", false), o = mat_view(out, "out");
    if (x.rows != o.rows || x.cols != o.cols) throw std::invalid_argument("out must match X");
    const i64* c = vec_view(codes, x.rows, "codes");
    const bool weighted = weights.shape(0) != 0;
    const double* w = weighted ? vec_view(weights, x.rows, "weights") : nullptr;
    if (n_levels < 0) throw std::invalid_argument("n_levels must be >= 0");
    py::gil_scoped_release release;
    return weighted ? oneway_scatter_impl<true>(x, o, c, n_levels, w) : oneway_scatter_impl<false>(x, o, c, n_levels, w);
}

}  // namespace

void register_oneway_scatter(py::module_& m) {
    m.def("within_oneway_scatter", &oneway_scatter, py::arg("X"), py::arg("out"), py::arg("codes"),
          py::arg("n_levels"), py::arg("weights"),
          "out = X - weighted means by level (may alias X), rows in any order: two streamed passes "
          "with a per-level table. Empty weights: unit weights. Returns the number of non-finite "
          "(level, column) means.");
}

}  // namespace fastpanel
