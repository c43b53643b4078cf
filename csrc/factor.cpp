// Grouping permutation for factorised ids.
//
// Algorithm: stable counting sort. Given dense codes in [0, n_levels) and the group offsets
// (exclusive prefix sum of the level counts), one pass scatters each row index to the next
// free slot of its level: order[next[code[i]]++] = i. O(n + n_levels) time, no comparisons;
// rows of a level keep their input order (so within-entity time order is preserved), giving
// exactly the permutation of a stable argsort of the codes.
//
// Naming: see common.hpp (_N per observation, _G per level).
#include <algorithm>
#include <cstdint>
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
    // O(n_levels) check that the offsets are a valid partition of 0..n: together with the
    // per-row bound below, no write can leave order_N whatever arrays Python passes.
    if (n_levels >= 0 && starts_G[0] != 0) throw std::invalid_argument("group_starts must start at 0");
    for (i64 g = 0; g < n_levels; ++g)
        if (starts_G[g + 1] < starts_G[g]) throw std::invalid_argument("group_starts must be non-decreasing");
    py::array_t<i64> order(n);
    i64* order_N = order.mutable_data();
    {
        py::gil_scoped_release release;
        std::vector<i64> next(starts_G, starts_G + n_levels);
        for (i64 i = 0; i < n; ++i) {
            const i64 c = codes_N[i];
            if (c < 0 || c >= n_levels) throw std::invalid_argument("codes out of range");
            // more rows of level c than group_starts allots: codes and starts disagree
            if (next[c] >= starts_G[c + 1]) throw std::invalid_argument("group_starts do not match the counts of codes");
            order_N[next[c]++] = i;
        }
    }
    return order;
}

// Integer ids in two passes: min, max and sortedness (parallel reduction), then which values
// of the (small) range occur, together with the shifted ids codes = ids - lo (the caller's
// copy of its ids, written by the pass that reads them anyway). Returns (lo, hi, is_sorted,
// present, codes), present[v - lo] = 1 when some row has id v; the caller remaps when some
// values are absent. max_range bounds the range (a wider one returns empty present and codes).
// Presence, not counts: one byte per value (a table the cache holds, written without reading)
// instead of an int64 counter per value; the counts, when an estimator needs them, come from
// level_counts on the dense codes.
py::tuple int_summary(py::array_t<i64> ids, i64 max_range) {
    const i64 n = vec_len(ids);
    if (n < 1) throw std::invalid_argument("ids must be a non-empty 1-D array");
    const i64* v = vec_view(ids, n, "ids");
    i64 lo = v[0], hi = v[0];
    i64 unsorted = 0;
    {
        py::gil_scoped_release release;
        // branch-free body over fixed thread ranges (the compiler vectorises it); the pair that
        // straddles two ranges is compared by the later range
#pragma omp parallel reduction(min : lo) reduction(max : hi) reduction(+ : unsorted) if (n > 200000)
        {
            const i64 t = omp_get_thread_num(), nt = omp_get_num_threads();
            const i64 i0 = std::max<i64>(1, n * t / nt), i1 = n * (t + 1) / nt;
            i64 l = v[i0 - 1], h = v[i0 - 1], u = 0;
            for (i64 i = i0; i < i1; ++i) {
                l = std::min(l, v[i]);
                h = std::max(h, v[i]);
                u += v[i] < v[i - 1];
            }
            lo = std::min(lo, l);
            hi = std::max(hi, h);
            unsorted += u;
        }
    }
    // hi - lo can overflow for ids spanning the whole int64 range: compare in unsigned.
    const auto range = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    if (range >= static_cast<std::uint64_t>(max_range)) {
        return py::make_tuple(lo, hi, unsorted == 0, py::array_t<std::uint8_t>(0), py::array_t<i64>(0));
    }
    const i64 width = static_cast<i64>(range) + 1;
    py::array_t<std::uint8_t> present(width);
    py::array_t<i64> codes(n);
    std::uint8_t* pr = present.mutable_data();
    i64* out = codes.mutable_data();
    {
        py::gil_scoped_release release;
        const i64 threads = n > 200000 ? omp_get_max_threads() : 1;
        const i64 n_tab = threads > 1 && threads * width <= 8 * n ? threads : 1;
        std::vector<std::uint8_t> extra(static_cast<std::size_t>((n_tab - 1) * width), 0);
        std::fill(pr, pr + width, 0);
#pragma omp parallel num_threads(n_tab) if (n_tab > 1)
        {
            const i64 t = omp_get_thread_num(), nt = omp_get_num_threads();
            std::uint8_t* seen = t == 0 ? pr : extra.data() + (t - 1) * width;
            const i64 i0 = n * t / nt, i1 = n * (t + 1) / nt;
            for (i64 i = i0; i < i1; ++i) {
                const i64 code = v[i] - lo;
                out[i] = code;
                seen[code] = 1;
            }
        }
        for (i64 t = 1; t < n_tab; ++t) {
            const std::uint8_t* seen = extra.data() + (t - 1) * width;
            for (i64 k = 0; k < width; ++k) pr[k] |= seen[k];
        }
    }
    return py::make_tuple(lo, hi, unsorted == 0, present, codes);
}

// Rows per level of dense codes in 0..n_levels-1 (a code outside raises): one histogram per
// thread when they fit in the size of the codes (integer counts: the same for any thread
// count), the counter of the row 32 ahead prefetched (codes in random order hit it at random).
py::array_t<i64> level_counts(py::array_t<i64> codes, i64 n_levels) {
    const i64 n = vec_len(codes);
    if (n < 0) throw std::invalid_argument("codes must be 1-D");
    if (n_levels < 0) throw std::invalid_argument("n_levels must be >= 0");
    const i64* v = vec_view(codes, n, "codes");
    py::array_t<i64> counts(n_levels);
    i64* c = counts.mutable_data();
    i64 bad = 0;
    {
        py::gil_scoped_release release;
        const i64 threads = n > 200000 ? omp_get_max_threads() : 1;
        const i64 n_hist = threads > 1 && threads * n_levels <= n ? threads : 1;
        std::vector<i64> extra(static_cast<std::size_t>((n_hist - 1) * n_levels), 0);
        std::fill(c, c + n_levels, 0);
        const auto width = static_cast<std::uint64_t>(n_levels);
#pragma omp parallel num_threads(n_hist) reduction(+ : bad) if (n_hist > 1)
        {
            const i64 t = omp_get_thread_num(), nt = omp_get_num_threads();
            i64* h = t == 0 ? c : extra.data() + (t - 1) * n_levels;
            const i64 i0 = n * t / nt, i1 = n * (t + 1) / nt;
            for (i64 i = i0; i < i1; ++i) {
                const auto ahead = static_cast<std::uint64_t>(v[std::min(i + 32, i1 - 1)]);
                __builtin_prefetch(h + (ahead < width ? ahead : 0), 1);
                const auto code = static_cast<std::uint64_t>(v[i]);
                if (code < width) ++h[code]; else ++bad;
            }
        }
        for (i64 t = 1; t < n_hist; ++t) {
            const i64* h = extra.data() + (t - 1) * n_levels;
            for (i64 k = 0; k < n_levels; ++k) c[k] += h[k];
        }
    }
    if (bad) throw std::invalid_argument("codes must lie in 0 .. n_levels - 1");
    return counts;
}

}  // namespace

void register_factor(py::module_& m) {
    m.def("int_summary", &int_summary, py::arg("ids"), py::arg("max_range"),
          "(min, max, is_sorted, presence over [min, max] (uint8), ids - min) of int64 ids in two passes.");
    m.def("level_counts", &level_counts, py::arg("codes"), py::arg("n_levels"),
          "Rows per level of dense int64 codes (ValueError for a code outside 0..n_levels-1).");
    m.def("group_order", &group_order, py::arg("codes"), py::arg("group_starts"),
          "Stable counting-sort permutation listing the rows of each level together.");
}

}  // namespace fastpanel
