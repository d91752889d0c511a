# C types of otdpi/learner/covert.py for the compiled learner (see setup.py).
cimport cython

cdef class Stream:
    cdef public dict others
    cdef public list rows
    cdef public long long skip
    cdef public object unit
    cdef public long long wait
    cpdef Stream of_unit(self, unit)
    @cython.locals(rows=list)
    cpdef object add(self, list values)
    cpdef judged(self, bint data)

@cython.locals(width=Py_ssize_t, data=Py_ssize_t, bits=Py_ssize_t, register=Py_ssize_t,
               row=list, column=list, needed=cython.double)
cpdef tuple judge(list rows)
cpdef bint is_data(Py_ssize_t data, Py_ssize_t width)
@cython.locals(steps=Py_ssize_t, ups=Py_ssize_t, downs=Py_ssize_t)
cpdef bint _looks_like_data(list column, lowest, highest, span)
