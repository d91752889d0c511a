# C types of otdpi/learner/surge.py for the compiled learner (see setup.py).
cimport cython
from otdpi.learner.baseline cimport Baseline

cdef class FloodWindow:
    cdef public double start
    cdef public long long count
    cdef public double left
    cdef public long long writes
    cdef public double limit
    cdef public long long generation

cdef class FloodCounter:
    cdef public dict by_sender
    cdef public long long generation
    cdef public dict limits
    cdef public dict windows
    cpdef FloodWindow window(self, sender, receiver, protocol, double ts, base)
    @cython.locals(cached=tuple, window=FloodWindow)
    cpdef observe(self, m, Baseline base)
    cpdef count(self, m, FloodWindow window, double ts, action)
