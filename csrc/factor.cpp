// Grouping permutation for factorised ids.
//
// Algorithm: stable counting sort. Given dense codes in [0, n_levels) and the group offsets
// (exclusive prefix sum of the level counts), one pass scatters each row index to the next
// free slot of its level: order[next[code[i]]++] = i. O(n + n_levels) time, no comparisons;
// rows of a level keep their input order (so within-entity time order is preserved), giving
// exactly the permutation of a stable argsort of the codes.
//
// Naming: see common.hpp (_N per observation, _G per level).
#include <vector>

#include "common.hpp"

namespace fastpanel {
namespace {

py::array_t<i64> group_order(py::array_t<i64> codes, py::array_t<i64> starts) {
    const i64 n = vec_len(codes);
    const i64 n_levels = vec_len(starts) - 1;
    if (n < 0 || n_levels < 0) throw std::invalid_argument("codes and group_starts must be 1-D");
    const i64* codes_N = vec_view(codes, n, "codes");
    const i64* starts_G = vec_view(starts, n_levels + 1, "group_starts");
    if (starts_G[n_levels] != n) throw std::invalid_argument("group_starts must end at len(codes)");
    py::array_t<i64> order(n);
    i64* order_N = order.mutable_data();
    {
        py::gil_scoped_release release;
        std::vector<i64> next(starts_G, starts_G + n_levels);
        for (i64 i = 0; i < n; ++i) {
            const i64 c = codes_N[i];
            if (c < 0 || c >= n_levels) throw std::invalid_argument("codes out of range");
            order_N[next[c]++] = i;
        }
    }
    return order;
}

}  // namespace

void register_factor(py::module_& m) {
    m.def("group_order", &group_order, py::arg("codes"), py::arg("group_starts"),
          "Stable counting-sort permutation listing the rows of each level together.");
}

}  // namespace fastpanel
