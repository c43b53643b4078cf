// Accumulating the two-way Schur complement S = D_B - C' D_A^{-1} C group by group.
//
// Each A group a with B levels b_1..b_k (weights w_1..w_k, total W_a) adds w_q on the
// diagonal (D_B) and -w_q w_r / W_a on (b_q, b_r) (the rank-one term c_a c_a' / W_a): k^2 / 2
// updates of the upper triangle (b1 <= b2 stored at b2 * n_b + b1). Unweighted groups that
// carry each of at most 64 B levels once are summarised by the bit set of their levels and
// expanded once per distinct set (a balanced panel has one set), which is what makes the
// Schur assembly O(n) on panels.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common.hpp"

namespace fastpanel {

// S -= c_a c_a' / W_a for one group (upper triangle), and S += D_B for its rows.
inline void add_group_pairs(double* s_t, i64 n_b, const i64* b_buf, const double* w_buf, i64 k_a,
                            double inv_w) {
    for (i64 k = 0; k < k_a; ++k) s_t[b_buf[k] * n_b + b_buf[k]] += w_buf[k];
    for (i64 k1 = 0; k1 < k_a; ++k1) {
        const i64 b1 = b_buf[k1];
        const double w1s = w_buf[k1] * inv_w;
        s_t[b1 * n_b + b1] -= w1s * w_buf[k1];
        for (i64 k2 = k1 + 1; k2 < k_a; ++k2) {
            const i64 b2 = b_buf[k2];
            const i64 lo = b1 < b2 ? b1 : b2, hi = b1 < b2 ? b2 : b1;
            // (b1,b2) and (b2,b1) both receive w1 w2 / W: add twice to one triangle unless it
            // is a diagonal cell (a B level repeated within the group).
            s_t[hi * n_b + lo] -= (lo == hi ? 2.0 : 1.0) * w1s * w_buf[k2];
        }
    }
}

// count groups of size k share the level set `set`: each contributes +1 on the diagonal per
// level (D_B) and -1/k on every pair of its levels.
inline void expand_set(double* s_t, i64 n_b, std::uint64_t set, i64 count) {
    i64 levels[64];
    i64 k = 0;
    for (std::uint64_t m = set; m; m &= m - 1) levels[k++] = __builtin_ctzll(m);
    const double c = static_cast<double>(count), share = c / static_cast<double>(k);
    for (i64 q1 = 0; q1 < k; ++q1) {
        s_t[levels[q1] * n_b + levels[q1]] += c - share;
        for (i64 q2 = q1 + 1; q2 < k; ++q2) s_t[levels[q2] * n_b + levels[q1]] -= share;
    }
}

inline void expand_patterns(double* s_t, i64 n_b, const std::unordered_map<std::uint64_t, i64>& patterns) {
    for (const auto& [set, count] : patterns) expand_set(s_t, n_b, set, count);
}

// One group's S contribution: as a pattern when it qualifies, else pair by pair.
inline void add_group_schur(double* s_t, i64 n_b, const i64* b_buf, const double* w_buf, i64 k_a,
                            double inv_w, bool use_patterns,
                            std::unordered_map<std::uint64_t, i64>& patterns) {
    if (use_patterns) {
        std::uint64_t mask = 0;
        bool repeated = false;
        for (i64 k = 0; k < k_a; ++k) {
            const std::uint64_t bit = std::uint64_t{1} << b_buf[k];
            repeated |= (mask & bit) != 0;
            mask |= bit;
        }
        if (!repeated) {
            ++patterns[mask];
            return;
        }
    }
    add_group_pairs(s_t, n_b, b_buf, w_buf, k_a, inv_w);
}

// r_B += sum of the per-chunk r partials and S += sum of the per-chunk S partials, in chunk
// order (the same bits for any thread count); then the lower triangle of S from the upper.
inline void combine_chunks(const std::vector<double>& r_local, const std::vector<double>& s_local,
                           i64 n_chunks, i64 n_b, i64 p, bool want_schur, double* r_B, double* schur_BB) {
    for (i64 t = 0; t < n_chunks; ++t) {
        const double* r_t = r_local.data() + static_cast<size_t>(t) * n_b * p;
        for (i64 q = 0; q < n_b * p; ++q) r_B[q] += r_t[q];
        if (want_schur) {
            const double* s_t = s_local.data() + static_cast<size_t>(t) * n_b * n_b;
            for (i64 q = 0; q < n_b * n_b; ++q) schur_BB[q] += s_t[q];
        }
    }
    if (want_schur) {  // column-major storage
        for (i64 c = 0; c < n_b; ++c)
            for (i64 r = c + 1; r < n_b; ++r) schur_BB[c * n_b + r] = schur_BB[r * n_b + c];
    }
}

// The arguments of a two-way pass 2 (out = X - alpha_A - gamma_B): out (n x p, writable) and
// gamma (n_b x p column-major; nullptr one-way, n_b = 0).
inline const double* pass2_args(py::array_t<double>& gamma, py::array_t<double>& out, i64 n, i64 p, i64 n_b,
                                MatF& o) {
    o = mat_view(out, "out");
    if (o.rows != n || o.cols != p) throw std::invalid_argument("out must match X");
    if (n_b == 0) return nullptr;
    MatF g = mat_view(gamma, "gamma", false);
    if (g.rows != n_b || g.cols != p) throw std::invalid_argument("gamma must be (n_b, p)");
    return g.data;
}

}  // namespace fastpanel
