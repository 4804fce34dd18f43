# Shared declarations for the kernel modules (see fr_common.h).
cdef extern from "fr_common.h" nogil:
    int fr_openmp_enabled()
    int fr_omp_max_threads()
    int fr_isa_level()
    int FR_HAVE_CLONES


cdef enum:
    MAX_THREADS = 1024  # fastres._config.MAX_THREADS


cdef inline int check_threads(str op, int n_threads) except -1:
    """OpenMP takes num_threads=0 for "all", aborts on a negative count and kills the process
    when it cannot create the threads asked for: refuse all three."""
    if n_threads < 1 or n_threads > MAX_THREADS:
        raise ValueError(f"{op}: expected n_threads in [1, {MAX_THREADS}], got {n_threads}")
    return 0


cdef inline int expect_length(str op, str name, Py_ssize_t got, Py_ssize_t n) except -1:
    """A flat operand indexed over n elements: refuse any other length."""
    if got != n:
        raise ValueError(f"{op}: expected {name} of length {n}, got {got}")
    return 0


cdef inline tuple dims(const Py_ssize_t *shape, int ndim):
    """A memoryview's shape as a tuple."""
    return tuple([shape[i] for i in range(ndim)])


cdef inline int expect_shape(str op, str name, const Py_ssize_t *shape, tuple want) except -1:
    """The kernels index name with the extents want: refuse any other shape. Compared in C (no
    tuple is built unless the check fails: microsecond ops make several of these calls)."""
    cdef Py_ssize_t i, ndim = len(want)
    for i in range(ndim):
        if shape[i] != <Py_ssize_t>want[i]:
            raise ValueError(f"{op}: expected {name} of shape {want}, got {dims(shape, ndim)}")
    return 0
