// Wild cluster bootstrap statistics (Roodman, MacKinnon, Nielsen and Webb 2019, "Fast and wild").
//
// Algorithm: after one pass over the data (done in Python, fastpanel/ols/wildboot.py) the
// statistic of draw b depends on the G bootstrap-cluster weights v_b only:
//     n_b  = N v_b                       (q)     numerator R (beta*_b - beta_0)
//     z_hb = K_h v_b                     (q)     R A^-1 (bootstrap score sum of error cluster h)
//     D_b  = sum_h c_h z_hb z_hb'        (q x q) R V*_b R'
//     stat = n_b / sqrt(D_b) (q = 1)  or  n_b' D_b^-1 n_b (q > 1)
// Cost per draw O((q + H q) G), never O(n). Draws are processed in blocks of kBlock with the
// draws innermost (contiguous, vectorised); every draw sums over g = 0 .. G-1 in order, so its
// result depends neither on its block nor on the thread count.
//
// Weights: a counter-based generator shared with the NumPy oracle and the Numba kernel
// (fastpanel/kernels/wildboot_reference.py): bits = mix(mix(ent_g + (d + 1) * golden) + ent_g)
// for draw d (0-based) and cluster key ent_g; kinds 0 Rademacher, 1 Mammen, 2 Webb,
// 3 normal (Box-Muller), 4 full enumeration (bit G-1-g of d).
//
// wild_stats_lr takes K = P + U V' (sparse plus low rank r): O(nnz(P) + (H q + G) r) per draw.
//
// Naming: q restrictions, G bootstrap clusters, H error-cluster rows; N is q x G and K is
// (H q) x G, both row-major (C order) as NumPy hands them over.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.hpp"

namespace fastpanel {

namespace {

constexpr i64 kBlock = 64;
constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kSalt = 0xD1B54A32D192ED03ULL;

inline std::uint64_t mix64(std::uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

inline double weight(std::uint64_t e, int kind, i64 d, i64 G, i64 g) {
    if (kind == 4) return 2.0 * double((d >> (G - 1 - g)) & 1) - 1.0;
    const std::uint64_t bits = mix64(mix64(e + std::uint64_t(d + 1) * kGolden) + e);
    if (kind == 0) return 2.0 * double(bits >> 63) - 1.0;
    const double u = double(bits >> 11) * 0x1.0p-53;
    if (kind == 1) {
        const double s5 = std::sqrt(5.0);
        return u < (s5 + 1.0) / (2.0 * s5) ? -(s5 - 1.0) / 2.0 : (s5 + 1.0) / 2.0;
    }
    if (kind == 2) {
        static const double vals[6] = {-std::sqrt(1.5), -1.0, -std::sqrt(0.5), std::sqrt(0.5), 1.0, std::sqrt(1.5)};
        return vals[std::min<i64>(i64(u * 6.0), 5)];
    }
    const double u2 = double(mix64(bits ^ kSalt) >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log1p(-u)) * std::cos(2.0 * M_PI * u2);
}

// q = 1: den[j] += c_h (K_h v_j)^2 for the error clusters in groups of 4, as a register-blocked
// small GEMM (4 clusters x 8 draws): each weight loaded once feeds 4 products, and each draw's sum
// over g keeps its order. Compiled twice (x86-64-v3 with AVX2/FMA, and the baseline), chosen at
// load time. Returns the first cluster left for the general loop.
// t = n / sqrt(D) (q = 1) or n' D^-1 n (Cholesky); NaN when D is not positive definite. D is
// read at D[(a q + a2) stride + j] (lower triangle).
double finish(const double* n, i64 nstride, const double* D, i64 stride, i64 q, double* L, double* y) {
    if (q == 1) return D[0] > 0 ? n[0] / std::sqrt(D[0]) : NAN;
    for (i64 a = 0; a < q; ++a)
        for (i64 a2 = 0; a2 <= a; ++a2) {
            double acc = D[(a * q + a2) * stride];
            for (i64 t = 0; t < a2; ++t) acc -= L[a * q + t] * L[a2 * q + t];
            if (a == a2) {
                if (!(acc > 0.0)) return NAN;
                L[a * q + a] = std::sqrt(acc);
            } else {
                L[a * q + a2] = acc / L[a2 * q + a2];
            }
        }
    double w = 0.0;
    for (i64 a = 0; a < q; ++a) {
        double acc = n[a * nstride];
        for (i64 t = 0; t < a; ++t) acc -= L[a * q + t] * y[t];
        y[a] = acc / L[a * q + a];
        w += y[a] * y[a];
    }
    return w;
}

// The block's weights (G x kBlock, draws first .. first + nb - 1) and numerators N v (q x kBlock).
void block_weights(double* W, const std::uint64_t* pE, int kind, i64 first, i64 nb, i64 G) {
    for (i64 g = 0; g < G; ++g)
        for (i64 j = 0; j < nb; ++j) W[g * kBlock + j] = weight(pE[g], kind, first + j, G, g);
}

void block_numerators(double* Nb, const double* pN, const double* W, i64 q, i64 G) {
    std::fill(Nb, Nb + q * kBlock, 0.0);
    for (i64 a = 0; a < q; ++a)
        for (i64 g = 0; g < G; ++g) {
            const double c = pN[a * G + g];
            const double* v = W + g * kBlock;
            double* t = Nb + a * kBlock;
            for (i64 j = 0; j < kBlock; ++j) t[j] += c * v[j];
        }
}

// D += s Z Z' (lower triangle), per draw of the block.
void block_accumulate(double* D, const double* Z, double s, i64 q) {
    for (i64 a = 0; a < q; ++a)
        for (i64 a2 = 0; a2 <= a; ++a2) {
            double* d = D + (a * q + a2) * kBlock;
            const double* za = Z + a * kBlock;
            const double* zb = Z + a2 * kBlock;
            for (i64 j = 0; j < kBlock; ++j) d[j] += s * za[j] * zb[j];
        }
}

typedef double v4d __attribute__((vector_size(32)));

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
i64 den_blocks(const double* pK, const double* pS, const double* V, double* den, i64 H, i64 G) {
    i64 h0 = 0;
    for (; h0 + 4 <= H; h0 += 4) {
        const double* k0 = pK + h0 * G;
        for (i64 j0 = 0; j0 < kBlock; j0 += 8) {
            v4d acc[4][2] = {};
            for (i64 g = 0; g < G; ++g) {
                v4d va, vb;
                __builtin_memcpy(&va, V + g * kBlock + j0, sizeof(va));
                __builtin_memcpy(&vb, V + g * kBlock + j0 + 4, sizeof(vb));
                const double c[4] = {k0[g], k0[G + g], k0[2 * G + g], k0[3 * G + g]};
                for (int r = 0; r < 4; ++r) {
                    acc[r][0] += c[r] * va;
                    acc[r][1] += c[r] * vb;
                }
            }
            for (int r = 0; r < 4; ++r) {
                const double sr = pS[h0 + r];
                for (int t = 0; t < 4; ++t) {
                    den[j0 + t] += sr * acc[r][0][t] * acc[r][0][t];
                    den[j0 + 4 + t] += sr * acc[r][1][t] * acc[r][1][t];
                }
            }
        }
    }
    return h0;
}

py::array_t<double> wild_stats(py::array_t<double, py::array::c_style | py::array::forcecast> num,
                               py::array_t<double, py::array::c_style | py::array::forcecast> K,
                               py::array_t<double, py::array::c_style | py::array::forcecast> scale,
                               py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast> ent,
                               int kind, i64 start, i64 count) {
    if (num.ndim() != 2 || K.ndim() != 2 || scale.ndim() != 1 || ent.ndim() != 1)
        throw std::invalid_argument("wild_stats: num and K must be 2-D, scale and ent 1-D");
    const i64 q = num.shape(0), G = num.shape(1), H = scale.shape(0);
    if (K.shape(0) != H * q || K.shape(1) != G || ent.shape(0) != G || q < 1 || count < 0)
        throw std::invalid_argument("wild_stats: shapes of num, K, scale and ent do not agree");
    if (kind < 0 || kind > 4 || (kind == 4 && (G > 62 || start < 0)))
        throw std::invalid_argument("wild_stats: bad weight kind");
    const double* pN = num.data();
    const double* pK = K.data();
    const double* pS = scale.data();
    const std::uint64_t* pE = ent.data();
    py::array_t<double> out(count);
    double* po = out.mutable_data();
    const i64 n_blocks = (count + kBlock - 1) / kBlock;
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            std::vector<double> V(G * kBlock), Nb(q * kBlock), Z(q * kBlock), D(q * q * kBlock), L(q * q), y(q);
#pragma omp for schedule(static)
            for (i64 blk = 0; blk < n_blocks; ++blk) {
                const i64 b0 = blk * kBlock, nb = std::min(kBlock, count - b0);
                block_weights(V.data(), pE, kind, start + b0, nb, G);
                block_numerators(Nb.data(), pN, V.data(), q, G);
                std::fill(D.begin(), D.end(), 0.0);
                const i64 h_start = q == 1 ? den_blocks(pK, pS, V.data(), &D[0], H, G) : 0;
                for (i64 h = h_start; h < H; ++h) {
                    std::fill(Z.begin(), Z.end(), 0.0);
                    for (i64 a = 0; a < q; ++a) {
                        const double* krow = pK + (h * q + a) * G;
                        double* t = &Z[a * kBlock];
                        for (i64 g = 0; g < G; ++g) {
                            const double c = krow[g];
                            if (c == 0.0) continue;  // sparse rows (cells of multiway clusters)
                            const double* v = &V[g * kBlock];
                            for (i64 j = 0; j < kBlock; ++j) t[j] += c * v[j];
                        }
                    }
                    block_accumulate(D.data(), Z.data(), pS[h], q);
                }
                for (i64 j = 0; j < nb; ++j) po[b0 + j] = finish(&Nb[j], kBlock, &D[j], kBlock, q, L.data(), y.data());
            }
        }
    }
    return out;
}


// K = P + U V' (P sparse in CSR form over the H q rows, U (H q x r), V (G x r), row-major):
// z = P v + U (V' v), O(nnz(P) + (H q + G) r) per draw instead of O(H q G). With the fixed
// effects nested in the clusters P holds the cells' score sums and U V' the rank-k term.
py::array_t<double> wild_stats_lr(py::array_t<double, py::array::c_style | py::array::forcecast> num,
                                  py::array_t<i64, py::array::c_style | py::array::forcecast> indptr,
                                  py::array_t<i64, py::array::c_style | py::array::forcecast> cols,
                                  py::array_t<double, py::array::c_style | py::array::forcecast> vals,
                                  py::array_t<double, py::array::c_style | py::array::forcecast> U,
                                  py::array_t<double, py::array::c_style | py::array::forcecast> Vf,
                                  py::array_t<double, py::array::c_style | py::array::forcecast> scale,
                                  py::array_t<std::uint64_t, py::array::c_style | py::array::forcecast> ent,
                                  int kind, i64 start, i64 count) {
    if (num.ndim() != 2 || U.ndim() != 2 || Vf.ndim() != 2 || scale.ndim() != 1 || ent.ndim() != 1)
        throw std::invalid_argument("wild_stats_lr: num, U and V must be 2-D, scale and ent 1-D");
    const i64 q = num.shape(0), G = num.shape(1), H = scale.shape(0), r = U.shape(1), m = H * q;
    if (U.shape(0) != m || Vf.shape(0) != G || Vf.shape(1) != r || ent.shape(0) != G || indptr.shape(0) != m + 1 ||
        cols.shape(0) != vals.shape(0) || q < 1 || count < 0)
        throw std::invalid_argument("wild_stats_lr: shapes of num, P, U, V, scale and ent do not agree");
    if (kind < 0 || kind > 4 || (kind == 4 && (G > 62 || start < 0)))
        throw std::invalid_argument("wild_stats_lr: bad weight kind");
    const i64 nnz = cols.shape(0);
    const i64* pp = indptr.data();
    const i64* pc = cols.data();
    if (pp[0] != 0 || pp[m] != nnz) throw std::invalid_argument("wild_stats_lr: bad indptr");
    for (i64 e = 0; e < nnz; ++e)
        if (pc[e] < 0 || pc[e] >= G) throw std::invalid_argument("wild_stats_lr: column out of range");
    const double* pN = num.data();
    const double* pv = vals.data();
    const double* pU = U.data();
    const double* pV = Vf.data();
    const double* pS = scale.data();
    const std::uint64_t* pE = ent.data();
    py::array_t<double> out(count);
    double* po = out.mutable_data();
    const i64 n_blocks = (count + kBlock - 1) / kBlock;
    {
        py::gil_scoped_release release;
#pragma omp parallel
        {
            std::vector<double> W(G * kBlock, 0.0), Nb(q * kBlock), T(r * kBlock), Z(q * kBlock),
                D(q * q * kBlock), L(q * q), y(q);
#pragma omp for schedule(static)
            for (i64 blk = 0; blk < n_blocks; ++blk) {
                const i64 b0 = blk * kBlock, nb = std::min(kBlock, count - b0);
                block_weights(W.data(), pE, kind, start + b0, nb, G);
                block_numerators(Nb.data(), pN, W.data(), q, G);
                std::fill(T.begin(), T.end(), 0.0);
                std::fill(D.begin(), D.end(), 0.0);
                for (i64 g = 0; g < G; ++g) {
                    const double* v = &W[g * kBlock];
                    for (i64 c = 0; c < r; ++c) {
                        const double vc = pV[g * r + c];
                        double* t = &T[c * kBlock];
                        for (i64 j = 0; j < kBlock; ++j) t[j] += vc * v[j];
                    }
                }
                for (i64 h = 0; h < H; ++h) {
                    std::fill(Z.begin(), Z.end(), 0.0);
                    for (i64 a = 0; a < q; ++a) {
                        const i64 row = h * q + a;
                        double* z = &Z[a * kBlock];
                        for (i64 e = pp[row]; e < pp[row + 1]; ++e) {
                            const double c = pv[e];
                            const double* v = &W[pc[e] * kBlock];
                            for (i64 j = 0; j < kBlock; ++j) z[j] += c * v[j];
                        }
                        for (i64 c = 0; c < r; ++c) {
                            const double u = pU[row * r + c];
                            const double* t = &T[c * kBlock];
                            for (i64 j = 0; j < kBlock; ++j) z[j] += u * t[j];
                        }
                    }
                    block_accumulate(D.data(), Z.data(), pS[h], q);
                }
                for (i64 j = 0; j < nb; ++j) po[b0 + j] = finish(&Nb[j], kBlock, &D[j], kBlock, q, L.data(), y.data());
            }
        }
    }
    return out;
}

}  // namespace

void register_wildboot(py::module_& m) {
    m.def("wild_stats", &wild_stats, py::arg("num"), py::arg("K"), py::arg("scale"), py::arg("ent"),
          py::arg("kind"), py::arg("start"), py::arg("count"),
          "Wild cluster bootstrap statistics of draws start .. start+count-1 (see csrc/wildboot.cpp)");
    m.def("wild_stats_lr", &wild_stats_lr, py::arg("num"), py::arg("indptr"), py::arg("cols"), py::arg("vals"),
          py::arg("U"), py::arg("V"), py::arg("scale"), py::arg("ent"), py::arg("kind"), py::arg("start"),
          py::arg("count"), "wild_stats with K = P + U V' (sparse plus low rank; see csrc/wildboot.cpp)");
}

}  // namespace fastpanel
