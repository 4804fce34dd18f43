# Shared declarations for the kernel modules (see fr_common.h).
cdef extern from "fr_common.h" nogil:
    int fr_openmp_enabled()
    int fr_omp_max_threads()
    int fr_isa_level()
    int FR_HAVE_CLONES
