// Shared helpers for fastpanel's C++ kernels.
//
// Naming conventions used in every kernel file:
//   n        number of observations (rows), p number of columns of X
//   suffix _N  an array of length n (one entry per observation)
//   suffix _G  an array of length n_groups of the grouping dimension (one entry per level)
//   group_starts_G  length n_groups + 1; rows of group g are order_N[group_starts_G[g] ..
//                   group_starts_G[g+1]) (or those positions themselves when the data are
//                   already sorted by the group, signalled by an empty order array)
//   Matrices are column-major (Fortran order): column j of X is X + j * n.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_thread_num() { return 0; }
inline int omp_get_max_threads() { return 1; }
inline int omp_get_num_threads() { return 1; }
inline void omp_set_num_threads(int) {}
#endif

namespace fastpanel {

namespace py = pybind11;

using i64 = std::int64_t;

// Row at position pos of a grouping: through the permutation order_N, or pos itself when the
// rows are already sorted by the group (an empty order array).
template <bool Permuted>
inline i64 row_at(const i64* order_N, i64 pos) {
    if constexpr (Permuted) return order_N[pos]; else return pos;
}

// Column-major float64 matrix view (no ownership).
struct MatF {
    double* data;
    i64 rows;
    i64 cols;
};

// Views into NumPy arrays; the Python layer prepares arrays of the right dtype and layout,
// these checks only guard the contract (an error here is a bug in fastpanel, not user input).
inline MatF mat_view(py::array_t<double>& a, const char* name, bool writable = true) {
    // Inputs are only read: a read-only array (np.load mmap, pandas copy-on-write) is fine.
    py::buffer_info info = a.request(writable);
    if (info.ndim != 2) throw std::invalid_argument(std::string(name) + " must be 2-D");
    const i64 rows = info.shape[0], cols = info.shape[1];
    const bool f_contig = rows == 0 || cols == 0 || (rows <= 1 || info.strides[0] == (i64)sizeof(double)) &&
                          (cols <= 1 || info.strides[1] == (i64)sizeof(double) * rows);
    if (!f_contig) throw std::invalid_argument(std::string(name) + " must be Fortran-contiguous");
    return MatF{static_cast<double*>(info.ptr), rows, cols};
}

template <typename T>
inline const T* vec_view(const py::array_t<T>& a, i64 expected, const char* name) {
    py::buffer_info info = a.request();
    if (info.ndim != 1) throw std::invalid_argument(std::string(name) + " must be 1-D");
    if (info.shape[0] != expected && !(expected < 0))
        throw std::invalid_argument(std::string(name) + " has the wrong length");
    if (info.shape[0] > 1 && info.strides[0] != (i64)sizeof(T))
        throw std::invalid_argument(std::string(name) + " must be contiguous");
    return static_cast<const T*>(info.ptr);
}

inline i64 vec_len(const py::array& a) { return a.ndim() == 1 ? a.shape(0) : -1; }

// f(std::integral_constant<int, P>) with P = p for 1 <= p <= 8, else P = 0 (p at run time):
// a fixed p unrolls the column loops, which decides the speed of the row passes (a run-time
// p of 6 made pass C of within_codes.cpp 3-4x slower).
template <typename F>
inline void with_columns(i64 p, F&& f) {
    switch (p) {
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 5: f(std::integral_constant<int, 5>{}); break;
        case 6: f(std::integral_constant<int, 6>{}); break;
        case 7: f(std::integral_constant<int, 7>{}); break;
        case 8: f(std::integral_constant<int, 8>{}); break;
        default: f(std::integral_constant<int, 0>{});
    }
}

}  // namespace fastpanel
