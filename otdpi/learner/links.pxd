# C types of otdpi/learner/links.py for the compiled learner (see setup.py).
cimport cython

cdef class LinkBindings:
    cdef public dict _local
    cdef public dict flows
    cdef public dict macs
    cdef public dict seen
    @cython.locals(done=tuple, slot_a=list, slot_b=list, when=cython.double,
                   bound=cython.double)
    cpdef bint seen_flow(self, flow, src, dst, ts)
