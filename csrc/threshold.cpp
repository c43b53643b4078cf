// Panel threshold scan kernels (Hansen 1999): the C++/OpenMP twin of
// src/fastpanel/kernels/threshold_numba.py (same functions, arguments and results).
//
// Algorithm (docs: ARCHITECTURE "Why the threshold engine can be fast")
//   The data enter already transformed by the model's fixed linear transform A (within, or
//   within then deleting each entity's last period). With observations sorted by the threshold
//   variable q, candidate g has the lower regime as a prefix of length cut(g). With
//   <a, b> = a' A' M_B A b, u = A' e0 (e0 = M_B A y) and Q(a, b) = a' A'A b:
//       r_c(g)  = sum_{j < cut} z_j u_j                         (prefix sum)
//       K_cc(g) = Q(Z_g, Z_g) - P(g)' B^-1 P(g)                 (y-free, precompute)
//       K_cf(g) = Q(Z_g, Z_f) - P(g)' B^-1 P(f)                 (f: a fixed threshold)
//       Q(a, b) = sum_j h_j a_j b_j + sum_grp sum_{al,be} C[grp,al,be] s_al(a) s_be(b),
//       s_al(a) = sum_{j in grp} cw[j,al] a_j.
//   One sweep over the sorted observations then yields, for every candidate,
//       S(g) = S_F - d' E^+ d,   d = r_c - K_cf K_ff^-1 r_f,   E = K_cc - K_cf K_ff^-1 K_fc,
//       S_F  = e0'e0 - r_f' K_ff^-1 r_f.
//   Cross term of the sweep: with the fixed threshold's group sums sf[grp,be,:] known, define
//   T[grp,al,:] = sum_be C[grp,al,be] sf[grp,be,:] once per replicate; then observation j
//   crossing the threshold adds z_j (sum_al cw[j,al] T[grp_j,al,:])' to Q_group(Z_g, Z_f).
//   This folds the C-sparsity (the `cab == 0` tests of the Numba code) into a per-group
//   precontraction, so the inner loop has no branch and nc*pz instead of nc^2*pz^2 products.
//
// Cost per replicate: O(n_f nc pz m) for the fixed group sums, O(n (pz + m n_gr nc pz^2)) for
//   the sweep, O(G m pz (k pz + m pz^2)) for the small solves. Replicates are independent: the
//   OpenMP dimension of scan_batch and residualize; precompute is one sequential y-free sweep.
//
// Numerics: identical formulas to the Numba kernels; only the summation order of a few short
//   sums differs (agreement ~1e-13 relative). K_ff (m pz square, SPD) is inverted by
//   Gauss-Jordan with partial pivoting, E (pz square, PSD) by the pivot-dropping Cholesky of
//   _solve_psd.
//
// Naming conventions: n observations in threshold order, G candidates (cuts: increasing
//   lower-regime sizes), R replicates, m fixed thresholds (fixed_idx: candidate indices,
//   one row per replicate), pz regime variables, k base regressors, n_gr groupings,
//   nc weight vectors per grouping, n_groups group ids over all groupings; mp = m pz.
//   All arrays are C-contiguous (row-major), as the Numba kernels receive them; a (G, pz, pz)
//   array X is read as X[(g * pz + p) * pz + q]. Template parameters PZ / NC are the
//   compile-time pz / nc (0 = run-time value).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"

namespace fastpanel {
namespace {

// Below this many (replicate x observation) entries a batch takes well under a millisecond
// and waking threads costs more than it saves.
constexpr i64 kParallelMin = 100000;

// Size of the current team (common.hpp guards only the functions the other kernels use).
inline int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

// ---- argument views ------------------------------------------------------------------------

template <typename T>
struct CArr {
    const T* ptr;
    i64 shape[4];
    i64 operator[](int d) const { return shape[d]; }
};

// View of a C-contiguous array of the given number of dimensions (read only).
template <typename T>
CArr<T> c_view(const py::array_t<T>& a, int ndim, const char* name) {
    py::buffer_info info = a.request();
    if (info.ndim != ndim)
        throw std::invalid_argument(std::string(name) + " must be " + std::to_string(ndim) + "-D");
    CArr<T> v{static_cast<const T*>(info.ptr), {1, 1, 1, 1}};
    i64 stride = sizeof(T);
    for (int d = ndim - 1; d >= 0; --d) {
        v.shape[d] = info.shape[d];
        if (info.shape[d] > 1 && info.strides[d] != stride)
            throw std::invalid_argument(std::string(name) + " must be C-contiguous");
        stride *= info.shape[d];
    }
    return v;
}

inline void require(bool ok, const char* msg) {
    if (!ok) throw std::invalid_argument(msg);
}

// Shared, validated description of the quadratic form A'A and the regime variables.
struct Form {
    const double* zs;  // (n, pz)
    const double* h;   // (n,)
    const i64* grp;    // (n, n_gr)
    const double* cw;  // (n, n_gr, nc)
    const double* C;   // (n_groups, nc, nc)
    i64 n, pz, n_gr, nc, n_groups;
};

Form form_view(const py::array_t<double>& zs, const py::array_t<double>& h, const py::array_t<i64>& grp,
               const py::array_t<double>& cw, const py::array_t<double>& C) {
    const auto z = c_view(zs, 2, "zs");
    const auto hv = c_view(h, 1, "h");
    const auto g = c_view(grp, 2, "grp");
    const auto w = c_view(cw, 3, "cw");
    const auto c = c_view(C, 3, "C");
    Form f{z.ptr, hv.ptr, g.ptr, w.ptr, c.ptr, z[0], z[1], g[1], w[2], c[0]};
    require(hv[0] == f.n, "h must have one entry per row of zs");
    require(g[0] == f.n, "grp must have one row per row of zs");
    require(w[0] == f.n && w[1] == f.n_gr, "cw must have shape (n, n_gr, nc) matching grp");
    require(c[1] == f.nc && c[2] == f.nc, "C must have shape (n_groups, nc, nc) with nc of cw");
    for (i64 i = 0; i < f.n * f.n_gr; ++i)
        require(f.grp[i] >= 0 && f.grp[i] < f.n_groups, "grp entries must lie in [0, C.shape[0])");
    return f;
}

void check_cuts(const CArr<i64>& cuts, i64 n) {
    i64 prev = 0;
    for (i64 g = 0; g < cuts[0]; ++g) {
        require(cuts.ptr[g] >= prev && cuts.ptr[g] <= n,
                "cuts must be non-decreasing lower-regime sizes in [0, n]");
        prev = cuts.ptr[g];
    }
}

py::array_t<double> new_array(std::initializer_list<i64> shape) {
    std::vector<py::ssize_t> s(shape.begin(), shape.end());
    return py::array_t<double>(s);
}

// ---- precompute ----------------------------------------------------------------------------

py::tuple precompute(py::array_t<double> zs, py::array_t<double> h, py::array_t<i64> grp,
                     py::array_t<double> cw, py::array_t<double> C, py::array_t<double> As,
                     py::array_t<i64> cuts) {
    const Form f = form_view(zs, h, grp, cw, C);
    const auto A = c_view(As, 2, "As");
    const auto ct = c_view(cuts, 1, "cuts");
    require(A[0] == f.n, "As must have one row per row of zs");
    check_cuts(ct, f.n);
    const i64 n = f.n, pz = f.pz, n_gr = f.n_gr, nc = f.nc, k = A[1], G = ct[0];
    auto H = new_array({G, pz, pz}), Q0 = new_array({G, pz, pz}), P = new_array({G, k, pz});
    double *Hp = H.mutable_data(), *Qp = Q0.mutable_data(), *Pp = P.mutable_data();
    {
        py::gil_scoped_release release;
        std::vector<double> s(f.n_groups * nc * pz, 0.0), hrun(pz * pz, 0.0), grun(pz * pz, 0.0),
            prun(k * pz, 0.0);
        i64 pos = 0;
        for (i64 gi = 0; gi < G; ++gi) {
            for (const i64 c = ct.ptr[gi]; pos < c; ++pos) {
                const i64 j = pos;
                const double* z = f.zs + j * pz;
                for (i64 p = 0; p < pz; ++p) {
                    for (i64 q = 0; q < pz; ++q) hrun[p * pz + q] += f.h[j] * z[p] * z[q];
                    for (i64 a = 0; a < k; ++a) prun[a * pz + p] += A.ptr[j * k + a] * z[p];
                }
                for (i64 t = 0; t < n_gr; ++t) {
                    const i64 gid = f.grp[j * n_gr + t];
                    const double* w = f.cw + (j * n_gr + t) * nc;
                    double* sg = s.data() + gid * nc * pz;
                    const double* Cg = f.C + gid * nc * nc;
                    // change of sum_ab C_ab s_a s_b' when s_a += cw_a z
                    for (i64 al = 0; al < nc; ++al)
                        for (i64 be = 0; be < nc; ++be) {
                            const double cab = Cg[al * nc + be];
                            if (cab == 0.0) continue;
                            const double wa = w[al], wb = w[be];
                            for (i64 p = 0; p < pz; ++p)
                                for (i64 q = 0; q < pz; ++q)
                                    grun[p * pz + q] += cab * (wa * z[p] * sg[be * pz + q] +
                                                               sg[al * pz + p] * wb * z[q] +
                                                               wa * wb * z[p] * z[q]);
                        }
                    for (i64 al = 0; al < nc; ++al)
                        for (i64 p = 0; p < pz; ++p) sg[al * pz + p] += w[al] * z[p];
                }
            }
            for (i64 e = 0; e < pz * pz; ++e) {
                Hp[gi * pz * pz + e] = hrun[e];
                Qp[gi * pz * pz + e] = hrun[e] + grun[e];
            }
            std::copy(prun.begin(), prun.end(), Pp + gi * k * pz);
        }
    }
    return py::make_tuple(H, Q0, P);
}

// ---- residualize ---------------------------------------------------------------------------

py::tuple residualize(py::array_t<double> Qb_in, py::array_t<double> Y_in) {
    const auto Qb = c_view(Qb_in, 2, "Qb");
    const auto Y = c_view(Y_in, 2, "Y");
    const i64 n = Qb[0], k = Qb[1], R = Y[1];
    require(Y[0] == n, "Y must have one row per row of Qb");
    auto E = new_array({n, R}), ee = new_array({R});
    double *Ep = E.mutable_data(), *eep = ee.mutable_data();
    const double *q = Qb.ptr, *y = Y.ptr;
    {
        py::gil_scoped_release release;
        // coef[a * R + r] = (Qb' Y)[a, r]; v holds one row segment of E while it is formed.
        std::vector<double> coef(k * R, 0.0), vrow(R);
        double* c = coef.data();
        // Each thread owns a contiguous block of replicates (columns of Y and E) and walks the
        // rows in order, so its inner loops run over contiguous replicates (vectorised) and each
        // sum is formed in the same order as in the Numba kernel (bitwise identical results).
#pragma omp parallel if (n * R > kParallelMin)
        {
            const int nt = team_size(), t = omp_get_thread_num();
            const i64 r0 = R * t / nt, r1 = R * (t + 1) / nt;
            for (i64 i = 0; i < n; ++i) {
                const double* qi = q + i * k;
                const double* yi = y + i * R;
                for (i64 a = 0; a < k; ++a) {
                    const double qa = qi[a];
                    double* ca = c + a * R;
                    for (i64 r = r0; r < r1; ++r) ca[r] += qa * yi[r];
                }
            }
            double* v = vrow.data();
            for (i64 r = r0; r < r1; ++r) eep[r] = 0.0;
            for (i64 i = 0; i < n; ++i) {
                const double* qi = q + i * k;
                const double* yi = y + i * R;
                double* Ei = Ep + i * R;
                for (i64 r = r0; r < r1; ++r) v[r] = yi[r];
                for (i64 a = 0; a < k; ++a) {
                    const double qa = qi[a];
                    const double* ca = c + a * R;
                    for (i64 r = r0; r < r1; ++r) v[r] -= qa * ca[r];
                }
                for (i64 r = r0; r < r1; ++r) {
                    Ei[r] = v[r];
                    eep[r] += v[r] * v[r];
                }
            }
        }
    }
    return py::make_tuple(E, ee);
}

// ---- scan_batch ----------------------------------------------------------------------------

// d' E^+ d for the small PSD matrix E (lower triangle read), pivots below 1e-10 scale dropped:
// the pseudo-inverse (see _solve_psd in threshold_numba.py for why).
inline double solve_psd(const double* E, const double* d, const double* scale, i64 pz, double* L,
                        double* v) {
    double total = 0.0;
    for (i64 i = 0; i < pz; ++i)
        for (i64 j = 0; j <= i; ++j) {
            double acc = E[i * pz + j];
            for (i64 t = 0; t < j; ++t) acc -= L[i * pz + t] * L[j * pz + t];
            if (i == j)
                L[i * pz + i] = acc > 1e-10 * scale[i] ? std::sqrt(acc) : 0.0;
            else
                L[i * pz + j] = L[j * pz + j] > 0.0 ? acc / L[j * pz + j] : 0.0;
        }
    for (i64 i = 0; i < pz; ++i) {
        if (L[i * pz + i] == 0.0) {
            v[i] = 0.0;
            continue;
        }
        double acc = d[i];
        for (i64 t = 0; t < i; ++t) acc -= L[i * pz + t] * v[t];
        v[i] = acc / L[i * pz + i];
        total += v[i] * v[i];
    }
    return total;
}

// Inverse of the small (mp x mp) matrix K by Gauss-Jordan with partial pivoting; K is
// overwritten. Returns false when a pivot is exactly zero (singular, as LAPACK's getrf reports).
bool invert_small(double* K, double* Kinv, i64 mp) {
    for (i64 i = 0; i < mp; ++i)
        for (i64 j = 0; j < mp; ++j) Kinv[i * mp + j] = i == j ? 1.0 : 0.0;
    for (i64 col = 0; col < mp; ++col) {
        i64 piv = col;
        for (i64 i = col + 1; i < mp; ++i)
            if (std::fabs(K[i * mp + col]) > std::fabs(K[piv * mp + col])) piv = i;
        if (K[piv * mp + col] == 0.0) return false;
        if (piv != col)
            for (i64 j = 0; j < mp; ++j) {
                std::swap(K[piv * mp + j], K[col * mp + j]);
                std::swap(Kinv[piv * mp + j], Kinv[col * mp + j]);
            }
        const double inv = 1.0 / K[col * mp + col];
        for (i64 j = 0; j < mp; ++j) {
            K[col * mp + j] *= inv;
            Kinv[col * mp + j] *= inv;
        }
        for (i64 i = 0; i < mp; ++i) {
            if (i == col) continue;
            const double fct = K[i * mp + col];
            if (fct == 0.0) continue;
            for (i64 j = 0; j < mp; ++j) {
                K[i * mp + j] -= fct * K[col * mp + j];
                Kinv[i * mp + j] -= fct * Kinv[col * mp + j];
            }
        }
    }
    return true;
}

struct ScanArgs {
    Form f;
    const double *U, *ee, *H, *Kcc, *P, *Binv;
    const i64 *cuts, *fixed_idx;
    i64 R, G, m, k;
    double *S, *SF;
};

// Per-thread scratch, allocated once per thread and reused for all its replicates.
struct Scratch {
    std::vector<double> T, RC, QCF, BPf, Kff, Kffinv, rf, wf, Kcf, KK, E, d, L, scale, v, cross,
        rc, vq;
    Scratch(const ScanArgs& a) {
        const i64 pz = a.f.pz, m = a.m, mp = m * pz, nc = a.f.nc;
        T.resize(m * a.f.n_groups * nc * pz);
        RC.resize(a.G * pz);
        QCF.resize(a.G * m * pz * pz);
        BPf.resize(m * a.k * pz);
        Kff.resize(mp * mp);
        Kffinv.resize(mp * mp);
        rf.resize(mp);
        wf.resize(mp);
        Kcf.resize(pz * mp);
        KK.resize(pz * mp);
        E.resize(pz * pz);
        d.resize(pz);
        L.resize(pz * pz);
        scale.resize(pz);
        v.resize(pz);
        cross.resize(m * pz * pz);
        rc.resize(pz);
        vq.resize(nc * pz);
    }
};


// T[a, grp, al, :] = sum_be C[grp, al, be] sf[a, grp, be, :], with sf the group sums of cw z over
// the lower regime of fixed threshold a (a scatter-add over its first cut(f) observations).
// PZ / NC / NGR: compile-time sizes, 0 = run-time value.
template <int PZ, int NC, int NGR>
void build_T(const ScanArgs& a, const i64* fidx, Scratch& w) {
    const Form& f = a.f;
    const i64 pz = PZ ? PZ : f.pz, nc = NC ? NC : f.nc, n_gr = NGR ? NGR : f.n_gr;
    const i64 n_groups = f.n_groups, gsz = nc * pz;
    const double* zs = f.zs;
    const double* cw = f.cw;
    const i64* grp = f.grp;
    double* T = w.T.data();
    double* vq = w.vq.data();
    std::fill(w.T.begin(), w.T.end(), 0.0);
    for (i64 fa = 0; fa < a.m; ++fa) {
        double* Ta = T + fa * n_groups * gsz;
        const i64 cf = a.cuts[fidx[fa]];
        for (i64 j = 0; j < cf; ++j) {
            const double* z = zs + j * pz;
            for (i64 t = 0; t < n_gr; ++t) {
                const double* cwj = cw + (j * n_gr + t) * nc;
                double* sg = Ta + grp[j * n_gr + t] * gsz;
                for (i64 al = 0; al < nc; ++al)
                    for (i64 p = 0; p < pz; ++p) sg[al * pz + p] += cwj[al] * z[p];
            }
        }
        for (i64 g = 0; g < n_groups; ++g) {
            double* sg = Ta + g * gsz;
            const double* Cg = f.C + g * nc * nc;
            for (i64 al = 0; al < nc; ++al)
                for (i64 q = 0; q < pz; ++q) {
                    double acc = 0.0;
                    for (i64 be = 0; be < nc; ++be) acc += Cg[al * nc + be] * sg[be * pz + q];
                    vq[al * pz + q] = acc;
                }
            for (i64 e = 0; e < gsz; ++e) sg[e] = vq[e];
        }
    }
}

// Sweep kernels. Both write RC (G, pz) = r_c(g) and QCF (G, m, pz, pz) = Q(Z_g, Z_f) (the
// group part accumulated here plus the diagonal part H at min(g, f)).
// Observation j adds z_j u_j to r_c and z_j v_j' to the cross term, v_j = sum_al cw T[grp_j].
using SweepFn = void (*)(const ScanArgs&, const double*, const i64*, double*, double*, Scratch&);

inline void store_qcf(const ScanArgs& a, i64 gi, const i64* fidx, const double* cross, double* QCF) {
    const i64 pz = a.f.pz, m = a.m;
    for (i64 fa = 0; fa < m; ++fa) {
        const i64 hi = gi < fidx[fa] ? gi : fidx[fa];  // diagonal part: H at min(g, f)
        const double* Hh = a.H + hi * pz * pz;
        double* out = QCF + (gi * m + fa) * pz * pz;
        for (i64 e = 0; e < pz * pz; ++e) out[e] = cross[fa * pz * pz + e] + Hh[e];
    }
}

// Any pz, nc, n_gr, m: running sums in the scratch buffers.
void sweep_generic(const ScanArgs& a, const double* u, const i64* fidx, double* RC, double* QCF,
                   Scratch& w) {
    build_T<0, 0, 0>(a, fidx, w);
    const double* T = w.T.data();
    const Form& f = a.f;
    const i64 pz = f.pz, nc = f.nc, n_gr = f.n_gr, n_groups = f.n_groups, m = a.m;
    const i64 gsz = nc * pz;
    double* rc = w.rc.data();
    double* cross = w.cross.data();
    std::fill(w.rc.begin(), w.rc.end(), 0.0);
    std::fill(w.cross.begin(), w.cross.end(), 0.0);
    i64 pos = 0;
    for (i64 gi = 0; gi < a.G; ++gi) {
        for (const i64 c = a.cuts[gi]; pos < c; ++pos) {
            const i64 j = pos;
            const double* z = f.zs + j * pz;
            const double uj = u[j];
            for (i64 p = 0; p < pz; ++p) rc[p] += z[p] * uj;
            for (i64 fa = 0; fa < m; ++fa) {
                const double* Ta = T + fa * n_groups * gsz;
                double* cr = cross + fa * pz * pz;
                for (i64 t = 0; t < n_gr; ++t) {
                    const double* cwj = f.cw + (j * n_gr + t) * nc;
                    const double* Tg = Ta + f.grp[j * n_gr + t] * gsz;
                    for (i64 q = 0; q < pz; ++q) {
                        double acc = 0.0;
                        for (i64 al = 0; al < nc; ++al) acc += cwj[al] * Tg[al * pz + q];
                        for (i64 p = 0; p < pz; ++p) cr[p * pz + q] += z[p] * acc;
                    }
                }
            }
        }
        for (i64 p = 0; p < pz; ++p) RC[gi * pz + p] = rc[p];
        store_qcf(a, gi, fidx, cross, QCF);
    }
}

// Compile-time pz, nc, n_gr, m: the running sums live in registers, and each segment between
// two consecutive cuts is summed with two independent accumulators (breaking the add-latency
// chain), then added to the running totals.
template <int PZ, int NC, int NGR, int M>
void sweep_fixed(const ScanArgs& a, const double* u, const i64* fidx, double* RC, double* QCF,
                 Scratch& w) {
    build_T<PZ, NC, NGR>(a, fidx, w);
    const double* T = w.T.data();
    constexpr int PP = PZ * PZ, MM = M > 0 ? M : 1, GSZ = NC * PZ;
    const Form& f = a.f;
    const i64 Tstride = f.n_groups * GSZ;
    const double* zs = f.zs;
    const double* cw = f.cw;
    const i64* grp = f.grp;
    double rc[PZ] = {}, cr[MM * PP] = {};
    auto add_obs = [&](i64 j, double* sr, double* sc) {
        const double* z = zs + j * PZ;
        const double uj = u[j];
        for (int p = 0; p < PZ; ++p) sr[p] += z[p] * uj;
        for (int fa = 0; fa < M; ++fa) {
            double v[PZ] = {};
            for (int t = 0; t < NGR; ++t) {
                const double* cwj = cw + (j * NGR + t) * NC;
                const double* Tg = T + fa * Tstride + grp[j * NGR + t] * GSZ;
                for (int q = 0; q < PZ; ++q)
                    for (int al = 0; al < NC; ++al) v[q] += cwj[al] * Tg[al * PZ + q];
            }
            for (int p = 0; p < PZ; ++p)
                for (int q = 0; q < PZ; ++q) sc[fa * PP + p * PZ + q] += z[p] * v[q];
        }
    };
    i64 pos = 0;
    for (i64 gi = 0; gi < a.G; ++gi) {
        const i64 c = a.cuts[gi];
        double sr0[PZ] = {}, sr1[PZ] = {}, sc0[MM * PP] = {}, sc1[MM * PP] = {};
        for (; pos + 1 < c; pos += 2) {
            add_obs(pos, sr0, sc0);
            add_obs(pos + 1, sr1, sc1);
        }
        if (pos < c) add_obs(pos++, sr0, sc0);
        for (int p = 0; p < PZ; ++p) {
            rc[p] += sr0[p] + sr1[p];
            RC[gi * PZ + p] = rc[p];
        }
        for (int e = 0; e < M * PP; ++e) cr[e] += sc0[e] + sc1[e];
        for (int fa = 0; fa < M; ++fa) {
            const i64 hi = gi < fidx[fa] ? gi : fidx[fa];  // diagonal part: H at min(g, f)
            const double* Hh = a.H + hi * PP;
            double* out = QCF + (gi * M + fa) * PP;
            for (int e = 0; e < PP; ++e) out[e] = cr[fa * PP + e] + Hh[e];
        }
    }
}

template <int PZ, int NC, int NGR>
SweepFn pick_m(i64 m) {
    switch (m) {
        case 0: return sweep_fixed<PZ, NC, NGR, 0>;
        case 1: return sweep_fixed<PZ, NC, NGR, 1>;
        case 2: return sweep_fixed<PZ, NC, NGR, 2>;
        case 3: return sweep_fixed<PZ, NC, NGR, 3>;
        default: return sweep_generic;
    }
}

template <int PZ>
SweepFn pick_form(i64 nc, i64 n_gr, i64 m) {
    // the forms PanelTransform produces: one-way (1, 1), drop-last (2, 1), two-way (1, 3)
    if (nc == 1 && n_gr == 1) return pick_m<PZ, 1, 1>(m);
    if (nc == 2 && n_gr == 1) return pick_m<PZ, 2, 1>(m);
    if (nc == 1 && n_gr == 3) return pick_m<PZ, 1, 3>(m);
    return sweep_generic;
}

SweepFn pick_sweep(const ScanArgs& a) {
    if (a.f.pz == 1) return pick_form<1>(a.f.nc, a.f.n_gr, a.m);
    if (a.f.pz == 2) return pick_form<2>(a.f.nc, a.f.n_gr, a.m);
    return sweep_generic;
}

// One replicate; returns false if K_ff is singular.
bool scan_one(const ScanArgs& a, i64 r, Scratch& w, SweepFn sweep) {
    const Form& f = a.f;
    const i64 pz = f.pz, m = a.m, k = a.k, G = a.G, mp = m * pz;
    const i64* fidx = a.fixed_idx + r * m;
    const double* u = a.U + r * f.n;

    // the sweep: r_c(g) and the Q(Z_g, Z_f) part of K_cf at every candidate
    double* RC = w.RC.data();
    double* QCF = w.QCF.data();
    sweep(a, u, fidx, RC, QCF, w);

    // B^-1 P(f), K_ff, r_f
    double* BPf = w.BPf.data();
    for (i64 fa = 0; fa < m; ++fa) {
        const double* Pf = a.P + fidx[fa] * k * pz;
        for (i64 i1 = 0; i1 < k; ++i1)
            for (i64 p = 0; p < pz; ++p) {
                double acc = 0.0;
                for (i64 i2 = 0; i2 < k; ++i2) acc += a.Binv[i1 * k + i2] * Pf[i2 * pz + p];
                BPf[(fa * k + i1) * pz + p] = acc;
            }
    }
    double* Kff = w.Kff.data();
    double* Kffinv = w.Kffinv.data();
    double* rf = w.rf.data();
    double* wf = w.wf.data();
    for (i64 fa = 0; fa < m; ++fa) {
        const i64 ia = fidx[fa];
        const double* Pf = a.P + ia * k * pz;
        for (i64 p = 0; p < pz; ++p) rf[fa * pz + p] = RC[ia * pz + p];
        for (i64 fb = 0; fb < m; ++fb)
            for (i64 p = 0; p < pz; ++p)
                for (i64 q = 0; q < pz; ++q) {
                    double acc = QCF[((ia * m + fb) * pz + p) * pz + q];
                    for (i64 i1 = 0; i1 < k; ++i1) acc -= Pf[i1 * pz + p] * BPf[(fb * k + i1) * pz + q];
                    Kff[(fa * pz + p) * mp + fb * pz + q] = acc;
                }
    }
    if (mp > 0 && !invert_small(Kff, Kffinv, mp)) return false;
    double sF = a.ee[r];
    for (i64 s1 = 0; s1 < mp; ++s1) {
        double acc = 0.0;
        for (i64 s2 = 0; s2 < mp; ++s2) acc += Kffinv[s1 * mp + s2] * rf[s2];
        wf[s1] = acc;
        sF -= rf[s1] * acc;
    }
    a.SF[r] = sF;

    // the small solve at every candidate
    double* Kcf = w.Kcf.data();
    double* KK = w.KK.data();
    double* E = w.E.data();
    double* d = w.d.data();
    double* scale = w.scale.data();
    double* Srow = a.S + r * G;
    for (i64 gi = 0; gi < G; ++gi) {
        const double* Kc = a.Kcc + gi * pz * pz;
        const double* Pg = a.P + gi * k * pz;
        for (i64 p = 0; p < pz; ++p) scale[p] = std::max(Kc[p * pz + p], 1e-300);
        for (i64 fa = 0; fa < m; ++fa)
            for (i64 p = 0; p < pz; ++p)
                for (i64 q = 0; q < pz; ++q) {
                    double acc = QCF[((gi * m + fa) * pz + p) * pz + q];
                    for (i64 i1 = 0; i1 < k; ++i1) acc -= Pg[i1 * pz + p] * BPf[(fa * k + i1) * pz + q];
                    Kcf[p * mp + fa * pz + q] = acc;
                }
        for (i64 p = 0; p < pz; ++p) {
            double acc = RC[gi * pz + p];
            for (i64 t = 0; t < mp; ++t) acc -= Kcf[p * mp + t] * wf[t];
            d[p] = acc;
            // KK = K_cf K_ff^-1 (row p)
            for (i64 s2 = 0; s2 < mp; ++s2) {
                double kk = 0.0;
                for (i64 s1 = 0; s1 < mp; ++s1) kk += Kcf[p * mp + s1] * Kffinv[s1 * mp + s2];
                KK[p * mp + s2] = kk;
            }
        }
        for (i64 p = 0; p < pz; ++p)
            for (i64 q = 0; q <= p; ++q) {  // solve_psd reads the lower triangle only
                double acc = Kc[p * pz + q];
                for (i64 s2 = 0; s2 < mp; ++s2) acc -= KK[p * mp + s2] * Kcf[q * mp + s2];
                E[p * pz + q] = acc;
            }
        Srow[gi] = sF - solve_psd(E, d, scale, pz, w.L.data(), w.v.data());
    }
    return true;
}

bool scan_all(const ScanArgs& a) {
    const SweepFn sweep = pick_sweep(a);
    int bad = 0;
#pragma omp parallel if (a.R > 1 && a.R * a.f.n > kParallelMin) reduction(+ : bad)
    {
        Scratch w(a);
#pragma omp for schedule(dynamic, 4)
        for (i64 r = 0; r < a.R; ++r) bad += !scan_one(a, r, w, sweep);
    }
    return bad == 0;
}

py::tuple scan_batch(py::array_t<double> U, py::array_t<double> ee, py::array_t<i64> cuts,
                     py::array_t<i64> fixed_idx, py::array_t<double> zs, py::array_t<double> h,
                     py::array_t<i64> grp, py::array_t<double> cw, py::array_t<double> C,
                     py::array_t<double> H, py::array_t<double> Kcc, py::array_t<double> P,
                     py::array_t<double> Binv) {
    const Form f = form_view(zs, h, grp, cw, C);
    const auto Uv = c_view(U, 2, "U");
    const auto eev = c_view(ee, 1, "ee");
    const auto ct = c_view(cuts, 1, "cuts");
    const auto fi = c_view(fixed_idx, 2, "fixed_idx");
    const auto Hv = c_view(H, 3, "H");
    const auto Kv = c_view(Kcc, 3, "Kcc");
    const auto Pv = c_view(P, 3, "P");
    const auto Bv = c_view(Binv, 2, "Binv");
    const i64 R = Uv[0], G = ct[0], m = fi[1], k = Pv[1], pz = f.pz;
    require(Uv[1] == f.n, "U must have shape (R, n) with n the rows of zs");
    require(eev[0] == R, "ee must have one entry per row of U");
    require(fi[0] == R, "fixed_idx must have one row per row of U");
    require(Hv[0] == G && Hv[1] == pz && Hv[2] == pz, "H must have shape (G, pz, pz)");
    require(Kv[0] == G && Kv[1] == pz && Kv[2] == pz, "Kcc must have shape (G, pz, pz)");
    require(Pv[0] == G && Pv[2] == pz, "P must have shape (G, k, pz)");
    require(Bv[0] == k && Bv[1] == k, "Binv must have shape (k, k) with k = P.shape[1]");
    check_cuts(ct, f.n);
    for (i64 i = 0; i < R * m; ++i)
        require(fi.ptr[i] >= 0 && fi.ptr[i] < G, "fixed_idx entries must be candidate indices in [0, G)");
    auto S = new_array({R, G}), SF = new_array({R});
    ScanArgs a{f, Uv.ptr, eev.ptr, Hv.ptr, Kv.ptr, Pv.ptr, Bv.ptr, ct.ptr, fi.ptr,
               R, G, m, k, S.mutable_data(), SF.mutable_data()};
    bool ok;
    {
        py::gil_scoped_release release;
        ok = scan_all(a);
    }
    if (!ok)
        throw std::runtime_error(
            "K_ff, the cross-product of the fixed thresholds' regime variables, is singular: a "
            "fixed threshold leaves a regime without identifying variation");
    return py::make_tuple(S, SF);
}

}  // namespace

void register_threshold(py::module_& m) {
    m.def("threshold_precompute", &precompute, py::arg("zs"), py::arg("h"), py::arg("grp"),
          py::arg("cw"), py::arg("C"), py::arg("As"), py::arg("cuts"),
          "y-free sweep of the threshold scan: (H, Q0, P) at every candidate cut.");
    m.def("threshold_residualize", &residualize, py::arg("Qb"), py::arg("Y"),
          "E = Y - Qb Qb' Y (n, R) and the column sums of squares ee (R,).");
    m.def("threshold_scan_batch", &scan_batch, py::arg("U"), py::arg("ee"), py::arg("cuts"),
          py::arg("fixed_idx"), py::arg("zs"), py::arg("h"), py::arg("grp"), py::arg("cw"),
          py::arg("C"), py::arg("H"), py::arg("Kcc"), py::arg("P"), py::arg("Binv"),
          "S(g) (R, G) for every candidate and replicate given its fixed thresholds, and S_F (R,).");
}

}  // namespace fastpanel
