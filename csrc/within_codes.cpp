// One- and two-way within transform straight from the level codes: rows are never moved.
//
// Algorithm (unweighted; two-way: B has at most 64 levels and each (A, B) cell holds at most
// one row, the panel case; A is the dimension eliminated in closed form, see within.cpp)
//   pass A (rows in input order): each A level's record (one 64-byte line when p <= 7) gets
//     its p column totals and, two-way, the bit set of its B levels (one-way: its row count);
//     two-way also the B totals P_B. In random row order a row reaches its record at random:
//     the record of the row kPrefetch rows ahead is prefetched, so the pass is bound by memory
//     bandwidth instead of latency (the radix partition of within_rows.cpp moves the n x p
//     values three more times to reach the same locality).
//   levels: the split tables merged into the first; xbar_a = totals / n_a; two-way
//     r_B = P_B - sum_a [B in set_a] xbar_a  (= sum over the rows of B of x - xbar_A), the
//     means summed per distinct level set and then spread to its B levels (LevelSets), and
//     S = D_B - C' D_A^{-1} C from the counts of the level sets (schur_accum.hpp).
//   (the caller solves S gamma = r)
//   levels: alpha_a = xbar_a - (sum of gamma_B over set_a) / n_a; with at most 12 B levels
//     and p <= 8 the means of gamma per level set G[set] instead, and pass C forms
//     alpha_a = xbar_a - G[set_a] from the record it reads anyway (one sweep of the table less).
//   pass C (rows in input order): out = x - alpha_A - gamma_B, records prefetched as in pass A.
//   Cost O(n p): two streamed reads of X and one write, two random record accesses per row;
//   extra memory n_split x n_A records (n_split <= 4, see below).
//   A row repeating an (A, B) cell is detected in pass A: ok() is then false and the caller
//   uses the general kernels (within.cpp, within_rows.cpp).
//
// Accuracy: r_B is the difference of two sums of the data's size (P_B and the sum of means),
//   not a sum of deviations; with large offsets (1e8) naive summation would lose the digits
//   the deviations carry. Both are summed in short plain blocks (about kDdTerms terms per B
//   level) whose sums are added in double-double, so r_B's error stays near that of summing
//   the deviations (within 3x of it at entity offsets of 1e8, tests/test_within_codes.py),
//   far below the rounding of the transformed values themselves.
//
// Determinism: pass A runs over n_split fixed row ranges, each with its own table, merged in
//   range order; n_split depends on n and n_A only (at least 4 rows per A level per split, so
//   the tables stay below the size of X). Level loops run over fixed level chunks,
//   combined in chunk order. Results are bitwise the same for any thread count.
//
// Naming: see common.hpp. A record is R doubles: p totals (then means, then alpha) and word
// p, the B bit set or the row count (an integer stored in the double's bits).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common.hpp"
#include "huge_buffer.hpp"
#include "schur_accum.hpp"

namespace fastpanel {
namespace {

using u64 = std::uint64_t;

constexpr i64 kPrefetch = 64;         // rows ahead whose record is prefetched
constexpr i64 kBlock = 256;           // rows per block of pass C when p is large
constexpr i64 kDdTerms = 16;          // plain terms per B level before a double-double add
constexpr i64 kMaxSplits = 4;         // fixed row ranges of pass A (each has its own table)
constexpr i64 kRowsPerSplitLevel = 4;  // a split needs >= 4 rows per A level on average
constexpr i64 kParallelMin = 200000;  // rows x columns below which everything runs serially
constexpr i64 kLevelChunk = 65536;    // levels per chunk of the level loops

inline u64 load_word(const double* rec) {
    u64 v;
    std::memcpy(&v, rec, sizeof v);
    return v;
}
inline void store_word(double* rec, u64 v) { std::memcpy(rec, &v, sizeof v); }

// (hi, lo) += v, exactly up to the rounding of lo (Knuth's TwoSum; needs IEEE arithmetic, no
// -ffast-math).
inline void dd_add(double& hi, double& lo, double v) {
    const double s = hi + v, bb = s - hi;
    lo += (hi - (s - bb)) + (v - bb);
    hi = s;
}

// One chunk of A levels: how many levels have each B level set (for S), and the sums of their
// means Q_B = sum_a [B in set_a] xbar_a (for r). n_b <= 12: dense tables over the 2^n_b sets,
// the means summed per set (p adds per level, not p per B level of the set) and expanded to
// the B levels at the end; else a hash map of sets and the means added per B level. Plain sums
// go to double-double every kDdTerms terms (see Accuracy above).
class LevelSets {
public:
    LevelSets(i64 n_b, i64 p) : n_b_(n_b), p_(p), dense_(n_b <= 12) {
        const std::size_t slots = dense_ ? std::size_t{1} << n_b : static_cast<std::size_t>(n_b);
        count_.assign(dense_ ? slots : 0, 0);
        pending_.assign(slots, 0);
        sum_.assign(slots * p, 0.0);
        hi_.assign(slots * p, 0.0);
        lo_.assign(slots * p, 0.0);
    }

    template <int P>
    void add(u64 set, const double* mean) {
        const i64 p = P > 0 ? P : p_;
        if (dense_) {
            ++count_[set];
            add_to<P>(set, mean, p);
            return;
        }
        ++sparse_[set];
        for (u64 m = set; m; m &= m - 1) add_to<P>(__builtin_ctzll(m), mean, p);
    }

    // Q (row-major n_b x p) into (qh, ql), in double-double.
    void finish(double* qh, double* ql) {
        for (std::size_t slot = 0; slot < pending_.size(); ++slot)
            if (pending_[slot]) flush(slot);
        if (!dense_) {
            for (i64 q = 0; q < n_b_ * p_; ++q) { dd_add(qh[q], ql[q], hi_[q]); ql[q] += lo_[q]; }
            return;
        }
        for (std::size_t set = 1; set < count_.size(); ++set) {
            if (!count_[set]) continue;
            for (u64 m = set; m; m &= m - 1) {
                const i64 b = __builtin_ctzll(m);
                for (i64 j = 0; j < p_; ++j) {
                    dd_add(qh[b * p_ + j], ql[b * p_ + j], hi_[set * p_ + j]);
                    ql[b * p_ + j] += lo_[set * p_ + j];
                }
            }
        }
    }

    bool dense() const { return dense_; }
    i64 count(std::size_t set) const { return count_[set]; }  // dense only

    // S contributions of the counted sets (upper triangle, see schur_accum.hpp).
    void expand_schur(double* s_t) const {
        for (std::size_t set = 1; set < count_.size(); ++set)
            if (count_[set]) expand_set(s_t, n_b_, set, count_[set]);
        expand_patterns(s_t, n_b_, sparse_);
    }

private:
    template <int P>
    void add_to(std::size_t slot, const double* mean, i64 p) {
        double* acc = sum_.data() + slot * p;
        for (i64 j = 0; j < p; ++j) acc[j] += mean[j];
        if (++pending_[slot] == kDdTerms) flush(slot);
    }

    void flush(std::size_t slot) {
        for (i64 j = 0; j < p_; ++j) {
            const std::size_t q = slot * p_ + j;
            dd_add(hi_[q], lo_[q], sum_[q]);
            sum_[q] = 0.0;
        }
        pending_[slot] = 0;
    }

    i64 n_b_, p_;
    bool dense_;
    std::vector<i64> count_;
    std::vector<std::int32_t> pending_;
    std::vector<double> sum_, hi_, lo_;
    std::unordered_map<u64, i64> sparse_;
};

class WithinCodes {
public:
    WithinCodes(py::array_t<double> X, py::array_t<i64> codes_a, i64 n_a, py::array_t<i64> codes_b, i64 n_b)
        : X_(X), codes_a_(codes_a), codes_b_(codes_b) {
        MatF x = mat_view(X_, "X", false);
        xd_ = x.data;
        n_ = x.rows;
        p_ = x.cols;
        n_a_ = n_a;
        n_b_ = n_b;
        if (n_a_ < 1) throw std::invalid_argument("n_a must be positive");
        if (n_b_ < 0 || n_b_ > 64) throw std::invalid_argument("n_b must be in 0..64");
        ca_ = vec_view(codes_a_, n_, "codes_a");
        cb_ = n_b_ > 0 ? vec_view(codes_b_, n_, "codes_b") : nullptr;
        const i64 words = p_ + 1;
        rec_ = 1;
        while (rec_ < words && rec_ < 8) rec_ *= 2;
        if (rec_ < words) rec_ = (words + 7) / 8 * 8;
        serial_ = n_ * std::max<i64>(p_, 1) < kParallelMin;
        n_split_ = serial_ ? 1 : std::clamp<i64>(n_ / (kRowsPerSplitLevel * n_a_), 1, kMaxSplits);
        table_words_ = (n_a_ + 1) * rec_;  // level n_a: where rows with a bad code land
        const i64 nbp = n_b_ * p_;
        p_dd_.assign(2 * n_split_ * nbp, 0.0);
        r_.assign(nbp, 0.0);
        schur_.assign(n_b_ * n_b_, 0.0);
        tables_ = std::make_unique<ZeroBuffer<double>>(n_split_ * table_words_);
        std::vector<u64> dup(n_split_, 0), bad(n_split_, 0);
        {
            py::gil_scoped_release release;
#pragma omp parallel for schedule(static, 1) if (n_split_ > 1)
            for (i64 s = 0; s < n_split_; ++s) {
                with_columns(p_, [&](auto P) {
                    if (n_b_ > 0) pass_a<true, P>(s, dup[s], bad[s]);
                    else pass_a<false, P>(s, dup[s], bad[s]);
                });
            }
            for (i64 s = 0; s < n_split_; ++s) {
                if (bad[s]) break;
                ok_ = ok_ && dup[s] == 0;
            }
        }
        for (i64 s = 0; s < n_split_; ++s)
            if (bad[s]) throw std::invalid_argument("codes_a / codes_b hold a code outside 0..n_a-1 / 0..n_b-1");
        if (!ok_) return;
        py::gil_scoped_release release;
        levels_first();
    }

    // False when some (A, B) cell holds more than one row (use the general kernels).
    bool ok() const { return ok_; }
    i64 n_split() const { return n_split_; }

    // r (n_b x p, column-major) and S (n_b x n_b; empty unless want_schur).
    py::tuple pass1(bool want_schur) const {
        require_ok();
        py::array_t<double> r({n_b_, p_}, {sizeof(double), sizeof(double) * std::max<i64>(n_b_, 1)});
        const i64 s_dim = want_schur ? n_b_ : 0;
        py::array_t<double> schur({s_dim, s_dim}, {sizeof(double), sizeof(double) * std::max<i64>(s_dim, 1)});
        std::copy(r_.begin(), r_.end(), r.mutable_data());
        if (want_schur) std::copy(schur_.begin(), schur_.end(), schur.mutable_data());
        return py::make_tuple(r, schur);
    }

    // out = x - alpha_A - gamma_B (gamma: n_b x p column-major, ignored one-way). Once only.
    void pass2(py::array_t<double> gamma, py::array_t<double> out) {
        require_ok();
        if (done_) throw std::logic_error("pass2 runs once");
        MatF o{};
        const double* gm = pass2_args(gamma, out, n_, p_, n_b_, o);
        py::gil_scoped_release release;
        if (!gm) n_nonfinite_ = mean_nonfinite_;   // one-way: alpha is the means, counted already
        else if (!present_.empty()) set_means(gm);  // alpha = xbar - G[set], formed in pass C
        else levels_alpha(gm);                      // alpha in place of the means
        pass_c(gm, o.data);
        done_ = true;
        tables_.reset();
    }

    // Non-finite A effects (the caller locates the rows when this is non-zero).
    i64 n_nonfinite() const { return n_nonfinite_; }

private:
    void require_ok() const {
        if (!ok_) throw std::logic_error("an (A, B) cell holds several rows: use the general kernels");
    }

    double* table(i64 s) const { return tables_->get() + s * table_words_; }
    i64 split_lo(i64 s) const { return n_ * s / n_split_; }
    i64 level_chunks() const { return serial_ ? 1 : (n_a_ + kLevelChunk - 1) / kLevelChunk; }

    // Pass A over the rows of split s into its table; two-way also P_B (double-double).
    template <bool TwoWay, int P>
    void pass_a(i64 s, u64& dup_out, u64& bad_out) {
        u64 dup = 0, bad = 0;  // locals: the callers' flags of the two splits share a cache line
        double* tab = table(s);
        const i64 lo = split_lo(s), hi = split_lo(s + 1), n = n_, p = P > 0 ? P : p_, R = rec_, n_b = n_b_;
        const u64 n_a = static_cast<u64>(n_a_);
        const i64* ca = ca_;
        const i64* cb = cb_;
        const double* xd = xd_;
        double* ph = TwoWay ? p_dd_.data() + 2 * s * n_b * p : nullptr;
        double* pl = TwoWay ? ph + n_b * p : nullptr;
        std::vector<double> pb(TwoWay ? n_b * p : 0);
        const i64 block = TwoWay ? kDdTerms * std::max<i64>(n_b, 2) : kBlock;  // rows per P block
        for (i64 b0 = lo; b0 < hi; b0 += block) {
            const i64 b1 = std::min(b0 + block, hi);
            if (TwoWay) std::fill(pb.begin(), pb.end(), 0.0);
            for (i64 i = b0; i < b1; ++i) {
                const u64 ahead = static_cast<u64>(ca[std::min(i + kPrefetch, hi - 1)]);
                __builtin_prefetch(tab + std::min(ahead, n_a) * R, 1);
                const u64 au = static_cast<u64>(ca[i]);
                bad |= au >= n_a;
                double* rec = tab + std::min(au, n_a) * R;
                if constexpr (TwoWay) {
                    const u64 bu = static_cast<u64>(cb[i]);
                    bad |= bu >= static_cast<u64>(n_b);
                    const u64 bit = u64{1} << (bu & 63), set = load_word(rec + p);
                    dup |= set & bit;
                    store_word(rec + p, set | bit);
                    double* pr = pb.data() + (bu & 63) * p;
                    if (bu >= static_cast<u64>(n_b)) pr = pb.data();  // (bad: thrown later)
                    for (i64 j = 0; j < p; ++j) {
                        const double v = xd[j * n + i];
                        rec[j] += v;
                        pr[j] += v;
                    }
                } else {
                    store_word(rec + p, load_word(rec + p) + 1);
                    for (i64 j = 0; j < p; ++j) rec[j] += xd[j * n + i];
                }
            }
            if (TwoWay)
                for (i64 q = 0; q < n_b * p; ++q) dd_add(ph[q], pl[q], pb[q]);
        }
        dup_out = dup;
        bad_out = bad;
    }

    // Merge the split tables into table 0: means, bit set (or count); two-way r and S.
    void levels_first() {
        with_columns(p_, [&](auto P) { levels_first_impl<P>(); });
    }

    template <int P>
    void levels_first_impl() {
        const i64 n_chunk = level_chunks(), p = P > 0 ? P : p_, R = rec_, n_b = n_b_, nbp = n_b * p;
        const bool two_way = n_b > 0;
        std::vector<double> q_dd(two_way ? 2 * n_chunk * nbp : 0, 0.0);
        std::vector<double> s_local(two_way ? n_chunk * n_b * n_b : 0, 0.0);
        std::vector<u64> overlap(n_chunk, 0);
        std::vector<std::unique_ptr<LevelSets>> all_sets(n_chunk);
        double* t0 = table(0);
        i64 bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad) if (n_chunk > 1)
        for (i64 c = 0; c < n_chunk; ++c) {
            const i64 a_lo = n_a_ * c / n_chunk, a_hi = n_a_ * (c + 1) / n_chunk;
            double* qh = two_way ? q_dd.data() + 2 * c * nbp : nullptr;
            double* ql = two_way ? qh + nbp : nullptr;
            if (two_way) all_sets[c] = std::make_unique<LevelSets>(n_b, p);
            LevelSets* sets = all_sets[c].get();
            u64 ov = 0;
            for (i64 a = a_lo; a < a_hi; ++a) {
                double* rec = t0 + a * R;
                u64 word = load_word(rec + p);
                for (i64 s = 1; s < n_split_; ++s) {
                    const double* other = table(s) + a * R;
                    const u64 w = load_word(other + p);
                    if (two_way) {
                        ov |= word & w;
                        word |= w;
                    } else {
                        word += w;
                    }
                    for (i64 j = 0; j < p; ++j) rec[j] += other[j];
                }
                store_word(rec + p, word);
                const i64 count = two_way ? __builtin_popcountll(word) : static_cast<i64>(word);
                const double inv = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
                for (i64 j = 0; j < p; ++j) {
                    rec[j] *= inv;
                    bad += !std::isfinite(rec[j]);
                }
                if (two_way && word) sets->template add<P>(word, rec);
            }
            if (two_way) {
                sets->finish(qh, ql);
                sets->expand_schur(s_local.data() + c * n_b * n_b);
            }
            overlap[c] = ov;
        }
        for (i64 c = 0; c < n_chunk; ++c) ok_ = ok_ && overlap[c] == 0;
        mean_nonfinite_ = bad;
        if (!ok_ || !two_way) return;
        if (all_sets[0]->dense() && p <= 8) {  // the level sets present, for set_means()
            present_.assign(std::size_t{1} << n_b, 0);
            for (const auto& cs : all_sets)
                for (std::size_t set = 1; set < present_.size(); ++set) present_[set] |= cs->count(set) > 0;
        }
        // r = P - Q in double-double: the splits' P and the chunks' Q, each in order
        std::vector<double> hi(nbp, 0.0), lo(nbp, 0.0);
        for (i64 s = 0; s < n_split_; ++s) {
            const double* ph = p_dd_.data() + 2 * s * nbp;
            for (i64 q = 0; q < nbp; ++q) { dd_add(hi[q], lo[q], ph[q]); lo[q] += ph[nbp + q]; }
        }
        for (i64 c = 0; c < n_chunk; ++c) {
            const double* qh = q_dd.data() + 2 * c * nbp;
            for (i64 q = 0; q < nbp; ++q) { dd_add(hi[q], lo[q], -qh[q]); lo[q] -= qh[nbp + q]; }
        }
        // r is column-major n_b x p; P and Q are row-major (B level, column)
        for (i64 b = 0; b < n_b; ++b)
            for (i64 j = 0; j < p; ++j) r_[j * n_b + b] = hi[b * p + j] + lo[b * p + j];
        std::vector<double> unused_r;
        combine_chunks(unused_r, s_local, n_chunk, n_b, 0, true, nullptr, schur_.data());
    }

    // G[set] = mean of gamma_B over the B levels of set, for each level set present (row-major,
    // 2^n_b x p; n_b <= 12, p <= 8): pass C forms alpha_a = xbar_a - G[set_a] from the record
    // it reads anyway, which saves the sweep of levels_alpha over the table (the same sums in
    // the same order: the same bits).
    void set_means(const double* gamma_B) {
        const i64 p = p_, n_b = n_b_;
        set_mean_.assign(present_.size() * p, 0.0);
        i64 bad = 0;
        for (std::size_t set = 1; set < present_.size(); ++set) {
            if (!present_[set]) continue;
            double* acc = set_mean_.data() + set * p;
            const double inv = 1.0 / static_cast<double>(__builtin_popcountll(set));
            for (u64 m = set; m; m &= m - 1) {
                const double* g = gamma_B + __builtin_ctzll(m);
                for (i64 j = 0; j < p; ++j) acc[j] += g[j * n_b];
            }
            for (i64 j = 0; j < p; ++j) {
                acc[j] *= inv;
                bad += !std::isfinite(acc[j]);
            }
        }
        n_nonfinite_ = mean_nonfinite_ + bad;
    }

    // Two-way: alpha_a = xbar_a - (sum of gamma over set_a) / n_a in place of xbar.
    void levels_alpha(const double* gamma_B) {
        with_columns(p_, [&](auto P) { levels_alpha_impl<P>(gamma_B); });
    }

    template <int P>
    void levels_alpha_impl(const double* gamma_B) {
        const i64 n_chunk = level_chunks(), p = P > 0 ? P : p_, R = rec_, n_b = n_b_;
        double* t0 = table(0);
        i64 bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad) if (n_chunk > 1)
        for (i64 c = 0; c < n_chunk; ++c) {
            const i64 a_lo = n_a_ * c / n_chunk, a_hi = n_a_ * (c + 1) / n_chunk;
            std::vector<double> acc_buf(p);
            double* acc = acc_buf.data();
            for (i64 a = a_lo; a < a_hi; ++a) {
                double* rec = t0 + a * R;
                const u64 set = load_word(rec + p);
                const i64 count = __builtin_popcountll(set);
                const double inv = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
                for (i64 j = 0; j < p; ++j) acc[j] = 0.0;
                for (u64 m = set; m; m &= m - 1) {
                    const double* g = gamma_B + __builtin_ctzll(m);
                    for (i64 j = 0; j < p; ++j) acc[j] += g[j * n_b];
                }
                for (i64 j = 0; j < p; ++j) {
                    rec[j] -= acc[j] * inv;
                    bad += !std::isfinite(rec[j]);
                }
            }
        }
        n_nonfinite_ = bad;
    }

    // out = x - alpha_A - gamma_B, rows in input order, split evenly between the threads.
    void pass_c(const double* gamma_B, double* out) const {
        with_columns(p_, [&](auto P) {
            if (gamma_B) pass_c_impl<true, P>(gamma_B, out);
            else pass_c_impl<false, P>(gamma_B, out);
        });
    }

    template <bool TwoWay, int P>
    void pass_c_impl(const double* gamma_B, double* out) const {
        const i64 n = n_, R = rec_, n_b = n_b_;
        const double* t0 = table(0);
        const i64* ca = ca_;
        const i64* cb = cb_;
        const double* xd = xd_;
#pragma omp parallel if (!serial_)
        {
            const i64 nt = omp_get_num_threads(), t = omp_get_thread_num();
            const i64 lo = n * t / nt, hi = n * (t + 1) / nt;
            if constexpr (P > 0) {
                const double* set_mean = set_mean_.empty() ? nullptr : set_mean_.data();
                for (i64 i = lo; i < hi; ++i) {
                    __builtin_prefetch(t0 + ca[std::min(i + kPrefetch, hi - 1)] * R, 0);
                    const double* rec = t0 + ca[i] * R;
                    if constexpr (TwoWay) {
                        const double* g = gamma_B + cb[i];
                        if (set_mean) {
                            const double* gs = set_mean + load_word(rec + P) * P;
                            for (i64 j = 0; j < P; ++j) out[j * n + i] = xd[j * n + i] - (rec[j] - gs[j]) - g[j * n_b];
                        } else {
                            for (i64 j = 0; j < P; ++j) out[j * n + i] = xd[j * n + i] - rec[j] - g[j * n_b];
                        }
                    } else {
                        for (i64 j = 0; j < P; ++j) out[j * n + i] = xd[j * n + i] - rec[j];
                    }
                }
            } else {
                // many columns: blocks of rows, one column at a time (the records stay in L1/L2)
                i64 rec_at[kBlock], b_at[kBlock];
                for (i64 b0 = lo; b0 < hi; b0 += kBlock) {
                    const i64 m = std::min(kBlock, hi - b0);
                    for (i64 q = 0; q < m; ++q) {
                        __builtin_prefetch(t0 + ca[std::min(b0 + q + kPrefetch, hi - 1)] * R, 0);
                        rec_at[q] = ca[b0 + q] * R;
                        b_at[q] = TwoWay ? cb[b0 + q] : 0;
                    }
                    for (i64 j = 0; j < p_; ++j) {
                        double* o = out + j * n + b0;
                        const double* x = xd + j * n + b0;
                        const double* __restrict al = t0 + j;
                        const double* __restrict g = TwoWay ? gamma_B + j * n_b : nullptr;
                        for (i64 q = 0; q < m; ++q)
                            o[q] = TwoWay ? x[q] - al[rec_at[q]] - g[b_at[q]] : x[q] - al[rec_at[q]];
                    }
                }
            }
        }
    }

    py::array_t<double> X_;
    py::array_t<i64> codes_a_, codes_b_;  // kept alive: pass C reads them again
    const double* xd_ = nullptr;
    const i64* ca_ = nullptr;
    const i64* cb_ = nullptr;
    i64 n_ = 0, p_ = 0, n_a_ = 0, n_b_ = 0, rec_ = 1, n_split_ = 1, table_words_ = 0;
    bool serial_ = true, ok_ = true, done_ = false;
    i64 n_nonfinite_ = 0;
    std::unique_ptr<ZeroBuffer<double>> tables_;
    std::vector<double> p_dd_, r_, schur_;
    std::vector<char> present_;     // which of the 2^n_b level sets occur (see set_means)
    std::vector<double> set_mean_;  // G of set_means, or empty
    i64 mean_nonfinite_ = 0;        // non-finite A means (levels_first)
};

}  // namespace

void register_within_codes(py::module_& m) {
    py::class_<WithinCodes>(m, "WithinCodes",
                            "One- and two-way within transform from the level codes, rows in any "
                            "order and never moved (unweighted; two-way: n_b <= 64, one row per "
                            "(A, B) cell, else ok is False). pass1(want_schur) gives r and S, "
                            "pass2(gamma, out) writes X - alpha_A - gamma_B. n_b = 0: one-way.")
        .def(py::init<py::array_t<double>, py::array_t<i64>, i64, py::array_t<i64>, i64>(), py::arg("X"),
             py::arg("codes_a"), py::arg("n_a"), py::arg("codes_b"), py::arg("n_b"))
        .def_property_readonly("ok", &WithinCodes::ok)
        .def_property_readonly("n_split", &WithinCodes::n_split)
        .def("pass1", &WithinCodes::pass1, py::arg("want_schur"))
        .def("pass2", &WithinCodes::pass2, py::arg("gamma"), py::arg("out"))
        .def_property_readonly("n_nonfinite", &WithinCodes::n_nonfinite);
}

}  // namespace fastpanel
