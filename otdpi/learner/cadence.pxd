# C types of otdpi/learner/cadence.py for the compiled learner (see setup.py).
cimport cython
from otdpi.learner.baseline cimport ServiceStats

cdef long long RECENT

cdef class Cadence:
    cdef public tuple key
    cdef public ServiceStats stats
    cdef double times[8]
    cdef public long long count
    cdef public object period
    cdef public bint stopped
    cdef public bint off
    cdef public bint dirty
    cdef public object deadline
    cdef public object rank
    cpdef note(self, double ts)
    @cython.locals(count=cython.longlong, newest=cython.double)
    cpdef double recent_mean(self)
    @cython.locals(mean=cython.double)
    cpdef bint departing(self, double period)

cdef class CadenceWatch:
    cdef public dict by_key
    cdef public list dirty
    cdef public list due
    cdef public bint everything
    cdef public set off
    cdef public dict order
    cpdef Cadence of(self, tuple key, stats)
    @cython.locals(cadence=Cadence, picked=set, chosen=list, findings=list)
    cpdef list sweep(self, dict relations, double ts)
    @cython.locals(stats=ServiceStats, silent=cython.double, limit=cython.double,
                   deadline=cython.double, mean=cython.double)
    cpdef look(self, Cadence cadence, double ts)
