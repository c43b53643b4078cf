// One- and two-way within transform for rows in any order: a radix partition instead of a
// gather.
//
// Algorithm
//   When the rows of the A dimension (the one eliminated in closed form, see within.cpp) are
//   not contiguous, reaching them through the counting-sort permutation reads a column-major X
//   at random: one cache miss per row and column, in each of the two passes (5x the sorted
//   time at 9M x 6). Here the rows are instead scattered once into buckets of 2^shift
//   consecutive A levels, chosen so that a bucket's n_levels x p table of A totals stays in
//   the L2 cache: one streamed read of X, written row-major into a staging buffer through one
//   write stream per bucket (rows of a bucket keep their input order). Each pass of the sorted
//   algorithm then streams through a bucket's staged rows with its totals in cache:
//     pass 1: xbar_a (A means), then r_B += w (x - xbar_A), and S from the B levels of each A
//             level (their bit set when unweighted with <= 64 B levels, else pair by pair);
//     pass 2: alpha_a = xbar_a (kept from pass 1) - mean over a of gamma_B (a sweep over the
//             ids, not the staged rows), then x - alpha_A - gamma_B in place; one-way:
//             alpha = the A means, from one sweep.
//   A last streamed pass gathers the staged results back into the input row order.
//   Cost O(n p): four streamed reads of the n x p values (X, and the staged copy in pass 1,
//   pass 2 and the gather) and three writes; random access only inside a bucket's table. Extra
//   memory: the staged n x p values, two int32 codes per row, and n_A x p means.
//   One-way is the same with no B dimension (gamma = 0).
//
// Determinism: the scatter runs over kPartChunks fixed row chunks whose bucket cursors come
//   from a prefix sum, so the staged order does not depend on the threads; r and S are
//   accumulated over a fixed number of bucket groups, combined in group order. Results are
//   bitwise the same for any thread count.
//
// Naming: see common.hpp. Staged arrays (suffix _K) are in bucket order; staged row k holds
// X's row (p values, row-major) at xk + k * p. la_K: A level minus its bucket's first level;
// lb_K: B level.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common.hpp"
#include "huge_buffer.hpp"
#include "schur_accum.hpp"

namespace fastpanel {
namespace {

using i32 = std::int32_t;

constexpr i64 kPartChunks = 16;           // fixed row chunks of the scatter and gather
constexpr i64 kTableBytes = i64{1} << 19;  // a bucket's table of A totals: L2-resident
constexpr i64 kParallelMin = 200000;
constexpr i64 kBlock = 512;  // rows per block of the scatter and gather

class TwowayRows {
public:
    TwowayRows(py::array_t<double> X, py::array_t<i64> codes_a, py::array_t<i64> starts_a,
               py::array_t<i64> codes_b, i64 n_b, py::array_t<double> weights)
        : codes_a_(codes_a), starts_a_(starts_a) {
        MatF x = mat_view(X, "X", false);
        n_ = x.rows;
        p_ = x.cols;
        n_a_ = vec_len(starts_a) - 1;
        if (n_a_ < 1) throw std::invalid_argument("starts_a must hold n_a + 1 entries");
        n_b_ = n_b;
        ca_ = vec_view(codes_a_, n_, "codes_a");
        sa_ = vec_view(starts_a_, n_a_ + 1, "starts_a");
        if (sa_[n_a_] != n_) throw std::invalid_argument("starts_a must end at n");
        const i64* cb = n_b_ > 0 ? vec_view(codes_b, n_, "codes_b") : nullptr;
        weighted_ = vec_len(weights) > 0;
        const double* w = weighted_ ? vec_view(weights, n_, "weights") : nullptr;

        shift_ = 0;
        const i64 level_bytes = std::max<i64>(p_, 1) * 8 + 16;
        while ((i64{2} << shift_) * level_bytes <= kTableBytes && (i64{1} << shift_) < n_a_) ++shift_;
        n_buckets_ = ((n_a_ - 1) >> shift_) + 1;
        n_chunks_ = n_ * std::max<i64>(p_, 1) > kParallelMin ? kPartChunks : 1;

        // Bucket starts come from the A group starts; chunk cursors from per-chunk counts.
        bstart_.resize(n_buckets_ + 1);
        for (i64 bk = 0; bk <= n_buckets_; ++bk) bstart_[bk] = sa_[std::min(n_a_, bk << shift_)];
        cursor_.assign(n_chunks_ * n_buckets_, 0);
        {
            py::gil_scoped_release release;
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks_ > 1)
            for (i64 c = 0; c < n_chunks_; ++c) {
                i64* h = cursor_.data() + c * n_buckets_;
                for (i64 i = chunk_lo(c); i < chunk_lo(c + 1); ++i) ++h[ca_[i] >> shift_];
            }
            for (i64 bk = 0; bk < n_buckets_; ++bk) {
                i64 pos = bstart_[bk];
                for (i64 c = 0; c < n_chunks_; ++c) {
                    const i64 count = cursor_[c * n_buckets_ + bk];
                    cursor_[c * n_buckets_ + bk] = pos;
                    pos += count;
                }
            }
            xk_ = std::make_unique<HugeBuffer<double>>(n_ * p_);
            la_ = std::make_unique<HugeBuffer<i32>>(n_);
            lb_ = std::make_unique<HugeBuffer<i32>>(n_b_ > 0 ? n_ : 1);
            if (weighted_) wk_ = std::make_unique<HugeBuffer<double>>(n_);
            double* xk = xk_->get();
            i32* la = la_->get();
            i32* lb = lb_->get();
            double* wk = weighted_ ? wk_->get() : nullptr;
            const double* xd = x.data;
            const i64 n = n_, p = p_;
            for_row_blocks([&](i64 lo, i64 m, const i64* kbuf) {
                for (i64 q = 0; q < m; ++q) {
                    const i64 k = kbuf[q], a = ca_[lo + q];
                    la[k] = static_cast<i32>(a - ((a >> shift_) << shift_));
                    if (cb) lb[k] = static_cast<i32>(cb[lo + q]);
                    if (wk) wk[k] = w[lo + q];
                }
                for (i64 j = 0; j < p; ++j) {  // each column of X read as one stream
                    const double* x = xd + j * n + lo;
                    for (i64 q = 0; q < m; ++q) xk[kbuf[q] * p + j] = x[q];
                }
            });
        }
    }

    // r (n_b x p, column-major) and, when asked, S (n_b x n_b); one-way: r is empty.
    py::tuple pass1(bool want_schur) {
        const i64 n_b = n_b_, p = p_;
        py::array_t<double> r({n_b, p}, {sizeof(double), sizeof(double) * std::max<i64>(n_b, 1)});
        const i64 s_dim = want_schur ? n_b : 0;
        py::array_t<double> schur({s_dim, s_dim}, {sizeof(double), sizeof(double) * std::max<i64>(s_dim, 1)});
        double* r_ptr = r.mutable_data();
        double* s_ptr = schur.mutable_data();
        std::fill(r_ptr, r_ptr + n_b * p, 0.0);
        std::fill(s_ptr, s_ptr + s_dim * s_dim, 0.0);
        if (n_b == 0) return py::make_tuple(r, schur);
        {
            py::gil_scoped_release release;
            if (weighted_) pass1_impl<true>(want_schur, r_ptr, s_ptr);
            else pass1_impl<false>(want_schur, r_ptr, s_ptr);
        }
        return py::make_tuple(r, schur);
    }

    // out = x - alpha_A - gamma_B (gamma: n_b x p column-major; ignored for one-way).
    void pass2(py::array_t<double> gamma, py::array_t<double> out) {
        MatF o{};
        const double* gm = pass2_args(gamma, out, n_, p_, n_b_, o);
        py::gil_scoped_release release;
        if (weighted_) pass2_impl<true>(gm, o); else pass2_impl<false>(gm, o);
    }

    // Non-finite A totals (one-way: the caller locates the rows when this is non-zero).
    i64 n_nonfinite() const { return n_nonfinite_; }

private:
    i64 chunk_lo(i64 c) const { return n_ * c / n_chunks_; }

    // body(lo, m, kbuf) for blocks of kBlock input rows lo .. lo + m, kbuf[q] the staged
    // position of row lo + q: each fixed row chunk walks its own copy of the bucket cursors.
    template <typename Body>
    void for_row_blocks(Body body) const {
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks_ > 1)
        for (i64 c = 0; c < n_chunks_; ++c) {
            std::vector<i64> cur(cursor_.begin() + c * n_buckets_, cursor_.begin() + (c + 1) * n_buckets_);
            i64 kbuf[kBlock];
            for (i64 lo = chunk_lo(c); lo < chunk_lo(c + 1); lo += kBlock) {
                const i64 m = std::min(kBlock, chunk_lo(c + 1) - lo);
                for (i64 q = 0; q < m; ++q) kbuf[q] = cur[ca_[lo + q] >> shift_]++;
                body(lo, m, kbuf);
            }
        }
    }

    i64 level_lo(i64 bk) const { return bk << shift_; }
    i64 level_hi(i64 bk) const { return std::min(n_a_, (bk + 1) << shift_); }

    // Weight totals of a bucket's A levels into wt (unweighted: the counts).
    template <bool Weighted>
    void level_weights(i64 bk, std::vector<double>& wt) const {
        const i64 a0 = level_lo(bk), e = level_hi(bk) - a0;
        wt.assign(e, 0.0);
        if constexpr (Weighted) {
            const i32* la = la_->get();
            const double* wk = wk_->get();
            for (i64 k = bstart_[bk]; k < bstart_[bk + 1]; ++k) wt[la[k]] += wk[k];
        } else {
            for (i64 l = 0; l < e; ++l) wt[l] = static_cast<double>(sa_[a0 + l + 1] - sa_[a0 + l]);
        }
    }

    // S contributions of one bucket's A levels (upper triangle into s_t).
    template <bool Weighted>
    void bucket_schur(i64 bk, const std::vector<double>& wt, bool use_patterns, double* s_t,
                      std::unordered_map<std::uint64_t, i64>& patterns, std::vector<i64>& b_buf,
                      std::vector<double>& w_buf, std::vector<i64>& pos, std::vector<i32>& rows) const {
        const i64 n_b = n_b_, a0 = level_lo(bk), e = level_hi(bk) - a0;
        const i32* la = la_->get();
        const i32* lb = lb_->get();
        const double* wk = Weighted ? wk_->get() : nullptr;
        const i64 k0 = bstart_[bk], k1 = bstart_[bk + 1];
        if (use_patterns) {
            // Unweighted, <= 64 B levels: the bit set of each A level's B levels; a level whose
            // set has fewer bits than rows repeats a B level and is expanded pair by pair below.
            std::vector<std::uint64_t> mask(e, 0);
            for (i64 k = k0; k < k1; ++k) mask[la[k]] |= std::uint64_t{1} << lb[k];
            bool all_sets = true;
            for (i64 l = 0; l < e; ++l) {
                const i64 count = sa_[a0 + l + 1] - sa_[a0 + l];
                if (__builtin_popcountll(mask[l]) == count) {
                    if (count > 0) ++patterns[mask[l]];
                } else {
                    all_sets = false;
                }
            }
            if (all_sets) return;
        }
        // Group the bucket's rows by A level (local counting sort) and add pair by pair the
        // levels not already counted as a set.
        pos.assign(sa_ + a0, sa_ + a0 + e);
        rows.resize(k1 - k0);
        for (i64 k = k0; k < k1; ++k) rows[pos[la[k]]++ - sa_[a0]] = static_cast<i32>(k);
        for (i64 l = 0; l < e; ++l) {
            const i64 s = sa_[a0 + l] - sa_[a0], k_a = sa_[a0 + l + 1] - sa_[a0 + l];
            if (static_cast<i64>(b_buf.size()) < k_a) { b_buf.resize(k_a); w_buf.resize(k_a); }
            for (i64 q = 0; q < k_a; ++q) {
                b_buf[q] = lb[rows[s + q]];
                w_buf[q] = Weighted ? wk[rows[s + q]] : 1.0;
            }
            if (use_patterns) {
                std::uint64_t m = 0;
                for (i64 q = 0; q < k_a; ++q) m |= std::uint64_t{1} << b_buf[q];
                if (__builtin_popcountll(m) == k_a) continue;  // counted as a set above
            }
            const double inv_w = wt[l] > 0.0 ? 1.0 / wt[l] : 0.0;
            add_group_pairs(s_t, n_b, b_buf.data(), w_buf.data(), k_a, inv_w);
        }
    }

    template <bool Weighted>
    void pass1_impl(bool want_schur, double* r_B, double* schur_BB) {
        const i64 n_b = n_b_, p = p_;
        const i64 max_groups = (want_schur && n_b > 256) ? 4 : 16;
        const i64 n_groups = std::min<i64>(n_chunks_ > 1 ? max_groups : 1, n_buckets_);
        const bool use_patterns = !Weighted && n_b <= 64;
        std::vector<double> r_local(static_cast<size_t>(n_groups) * n_b * p, 0.0);
        std::vector<double> s_local(want_schur ? static_cast<size_t>(n_groups) * n_b * n_b : 0, 0.0);
        const double* xk = xk_->get();
        const i32* la = la_->get();
        const i32* lb = lb_->get();
        const double* wk = Weighted ? wk_->get() : nullptr;
        xbar_ = std::make_unique<HugeBuffer<double>>(n_a_ * p);
        double* xbar = xbar_->get();
#pragma omp parallel for schedule(dynamic, 1) if (n_groups > 1)
        for (i64 grp = 0; grp < n_groups; ++grp) {
            double* r_t = r_local.data() + static_cast<size_t>(grp) * n_b * p;
            double* s_t = want_schur ? s_local.data() + static_cast<size_t>(grp) * n_b * n_b : nullptr;
            std::vector<double> wt, mean, w_buf;
            std::vector<i64> b_buf, pos;
            std::vector<i32> rows;
            std::unordered_map<std::uint64_t, i64> patterns;
            const i64 bk_lo = n_buckets_ * grp / n_groups, bk_hi = n_buckets_ * (grp + 1) / n_groups;
            for (i64 bk = bk_lo; bk < bk_hi; ++bk) {
                const i64 e = level_hi(bk) - level_lo(bk), k0 = bstart_[bk], k1 = bstart_[bk + 1];
                level_weights<Weighted>(bk, wt);
                mean.assign(e * p, 0.0);
                for (i64 k = k0; k < k1; ++k) {  // A totals, streaming the bucket
                    double* m = mean.data() + la[k] * p;
                    const double* x = xk + k * p;
                    if constexpr (Weighted) {
                        const double wq = wk[k];
                        for (i64 j = 0; j < p; ++j) m[j] += wq * x[j];
                    } else {
                        for (i64 j = 0; j < p; ++j) m[j] += x[j];
                    }
                }
                for (i64 l = 0; l < e; ++l) {
                    const double inv = wt[l] > 0.0 ? 1.0 / wt[l] : 0.0;
                    for (i64 j = 0; j < p; ++j) mean[l * p + j] *= inv;
                }
                // kept for pass 2, which then reads the staged rows once instead of twice
                std::copy(mean.begin(), mean.end(), xbar + level_lo(bk) * p);
                for (i64 k = k0; k < k1; ++k) {  // r_B += w (x - xbar_A)
                    const double* m = mean.data() + la[k] * p;
                    const double* x = xk + k * p;
                    double* rb = r_t + lb[k];
                    const double wq = Weighted ? wk[k] : 1.0;
                    for (i64 j = 0; j < p; ++j) rb[j * n_b] += Weighted ? wq * (x[j] - m[j]) : x[j] - m[j];
                }
                if (want_schur)
                    bucket_schur<Weighted>(bk, wt, use_patterns, s_t, patterns, b_buf, w_buf, pos, rows);
            }
            if (want_schur) expand_patterns(s_t, n_b, patterns);
        }
        combine_chunks(r_local, s_local, n_groups, n_b, p, want_schur, r_B, schur_BB);
    }

    template <bool Weighted>
    void pass2_impl(const double* gamma_B, MatF out) {
        const i64 n_b = n_b_, p = p_, n = n_;
        double* xk = xk_->get();
        const i32* la = la_->get();
        const i32* lb = gamma_B ? lb_->get() : nullptr;
        const double* wk = Weighted ? wk_->get() : nullptr;
        i64 bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad) if (n_chunks_ > 1)
        for (i64 bk = 0; bk < n_buckets_; ++bk) {
            std::vector<double> wt, alpha;
            const i64 e = level_hi(bk) - level_lo(bk), k0 = bstart_[bk], k1 = bstart_[bk + 1];
            level_weights<Weighted>(bk, wt);
            alpha.assign(e * p, 0.0);
            if (xbar_ && lb) {
                // alpha_a = xbar_a - sum_{rows of a} w gamma_B / W_a: pass 1's means and a sweep
                // over the ids (not the staged rows)
                for (i64 k = k0; k < k1; ++k) {
                    double* al = alpha.data() + la[k] * p;
                    const double* g = gamma_B + lb[k];
                    const double wq = Weighted ? wk[k] : 1.0;
                    for (i64 j = 0; j < p; ++j) al[j] += Weighted ? wq * g[j * n_b] : g[j * n_b];
                }
                const double* xb = xbar_->get() + level_lo(bk) * p;
                for (i64 l = 0; l < e; ++l) {
                    const double inv = wt[l] > 0.0 ? 1.0 / wt[l] : 0.0;
                    for (i64 j = 0; j < p; ++j) {
                        alpha[l * p + j] = xb[l * p + j] - alpha[l * p + j] * inv;
                        bad += !std::isfinite(alpha[l * p + j]);
                    }
                }
            } else {
            for (i64 k = k0; k < k1; ++k) {  // alpha_a = mean over a of (x - gamma_B)
                double* al = alpha.data() + la[k] * p;
                const double* x = xk + k * p;
                const double wq = Weighted ? wk[k] : 1.0;
                if (lb) {
                    const double* g = gamma_B + lb[k];
                    for (i64 j = 0; j < p; ++j) al[j] += Weighted ? wq * (x[j] - g[j * n_b]) : x[j] - g[j * n_b];
                } else {
                    for (i64 j = 0; j < p; ++j) al[j] += Weighted ? wq * x[j] : x[j];
                }
            }
            for (i64 l = 0; l < e; ++l) {
                const double inv = wt[l] > 0.0 ? 1.0 / wt[l] : 0.0;
                for (i64 j = 0; j < p; ++j) {
                    bad += !std::isfinite(alpha[l * p + j]);
                    alpha[l * p + j] *= inv;
                }
            }
            }
            for (i64 k = k0; k < k1; ++k) {  // x - alpha_A - gamma_B, in place
                const double* al = alpha.data() + la[k] * p;
                double* x = xk + k * p;
                if (lb) {
                    const double* g = gamma_B + lb[k];
                    for (i64 j = 0; j < p; ++j) x[j] = x[j] - al[j] - g[j * n_b];
                } else {
                    for (i64 j = 0; j < p; ++j) x[j] = x[j] - al[j];
                }
            }
        }
        n_nonfinite_ = bad;
        xbar_.reset();
        // Back to the input row order: the scatter's cursors again, streamed.
        for_row_blocks([&](i64 lo, i64 m, const i64* kbuf) {
            for (i64 j = 0; j < p; ++j) {  // each column of out written as one stream
                double* o = out.data + j * n + lo;
                const double* src = xk + j;
                for (i64 q = 0; q < m; ++q) o[q] = src[kbuf[q] * p];
            }
        });
    }

    py::array_t<i64> codes_a_, starts_a_;  // kept alive: the gather reads codes_a again
    const i64* ca_ = nullptr;
    const i64* sa_ = nullptr;
    i64 n_ = 0, p_ = 0, n_a_ = 0, n_b_ = 0, shift_ = 0, n_buckets_ = 1, n_chunks_ = 1;
    bool weighted_ = false;
    i64 n_nonfinite_ = 0;
    std::vector<i64> bstart_, cursor_;
    std::unique_ptr<HugeBuffer<double>> xk_, wk_, xbar_;  // xbar_: pass 1's A means (n_a x p)
    std::unique_ptr<HugeBuffer<i32>> la_, lb_;
};

}  // namespace

void register_within_rows(py::module_& m) {
    py::class_<TwowayRows>(m, "WithinRows",
                           "Rows of X partitioned by A level (any input order): pass1() gives r "
                           "and S of the two-way Schur system, pass2(gamma, out) writes "
                           "X - alpha_A - gamma_B in the input order. n_b = 0: one-way.")
        .def(py::init<py::array_t<double>, py::array_t<i64>, py::array_t<i64>, py::array_t<i64>, i64,
                      py::array_t<double>>(),
             py::arg("X"), py::arg("codes_a"), py::arg("starts_a"), py::arg("codes_b"), py::arg("n_b"),
             py::arg("weights"))
        .def("pass1", &TwowayRows::pass1, py::arg("want_schur"))
        .def("pass2", &TwowayRows::pass2, py::arg("gamma"), py::arg("out"))
        .def_property_readonly("n_nonfinite", &TwowayRows::n_nonfinite);
}

}  // namespace fastpanel
