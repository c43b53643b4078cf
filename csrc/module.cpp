// fastpanel._core: wiring only. Each concept registers its functions from its own file.
#include "common.hpp"

namespace fastpanel {
void register_factor(py::module_& m);
void register_within(py::module_& m);
void register_within_rows(py::module_& m);
void register_within_codes(py::module_& m);
void register_threshold(py::module_& m);
void register_ols(py::module_& m);
void register_kway(py::module_& m);
void register_wildboot(py::module_& m);
void register_schur_dense(py::module_& m);
void register_oneway_scatter(py::module_& m);
}

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastpanel compiled kernels (private; use the fastpanel package API)";
    m.def("set_num_threads", [](int n) { omp_set_num_threads(n); }, pybind11::arg("n"));
    m.def("get_num_threads", []() { return omp_get_max_threads(); });
#ifdef FASTPANEL_HAVE_OPENMP
    m.attr("has_openmp") = true;
#else
    m.attr("has_openmp") = false;
#endif
    fastpanel::register_factor(m);
    fastpanel::register_within(m);
    fastpanel::register_within_rows(m);
    fastpanel::register_within_codes(m);
    fastpanel::register_threshold(m);
    fastpanel::register_ols(m);
    fastpanel::register_kway(m);
    fastpanel::register_wildboot(m);
    fastpanel::register_schur_dense(m);
    fastpanel::register_oneway_scatter(m);
}
