# C types of otdpi/learner/detector.py for the compiled learner (see setup.py).
cimport cython
from otdpi.learner.baseline cimport (
    Baseline, Entry, Ranges, Relation, ServiceStats, address_of, range_of,
    run_after, tuple_item, value_source,
)
from otdpi.learner.cadence cimport Cadence, CadenceWatch
from otdpi.learner.covert cimport Stream, is_data, judge
from otdpi.learner.links cimport LinkBindings
from otdpi.learner.surge cimport FloodCounter, FloodWindow

cdef class Novelties:
    cdef public dict counts
    cdef public Py_ssize_t head
    cdef public tuple key
    cdef public list kinds
    cdef public list times
    @cython.locals(times=list, kinds=list, counts=dict, head=Py_ssize_t,
                   state=list, since=cython.double)
    cpdef Py_ssize_t note(self, double ts, tuple novelty)

cdef class Detector:
    cdef public Baseline baseline
    cdef public object learn_for
    cdef public object learn_until
    cdef public bint learning
    cdef public double accept_after
    cdef public double forget_after
    cdef public dict models
    cdef public list alerts
    cdef public dict _throttle
    cdef public dict _scan
    cdef public dict _writers
    cdef public dict _streams
    cdef public list _cadence_dirty
    cdef public CadenceWatch _cadence
    cdef public double _next_cadence_check
    cdef public double _last_ts
    cdef public long long messages
    cdef public FloodCounter _floods
    cdef public LinkBindings _links
    cdef public object _points
    cdef public bint _more_models
    cdef public bint _covert
    cdef dict __dict__

    @cython.locals(ts=cython.double, base=Baseline, entry=Entry, rel=Relation,
                   stats=ServiceStats, addresses=Ranges, covered=cython.bint,
                   normal=cython.bint, forget=cython.double, fields=dict,
                   targets=tuple,
                   links=LinkBindings, floods=FloodCounter,
                   window=FloodWindow, emitted=list, found=list,
                   cadence=Cadence, carried=tuple, record=tuple, parts=tuple)
    cpdef list feed(self, message)
    @cython.locals(rel=Relation, stats=ServiceStats, addresses=Ranges,
                   found=list, raised=list, clock_key=tuple, key=tuple,
                   finding=tuple, previous=dict, frames=list)
    cpdef _fresh_repeat(self, m, Entry entry, double ts, tuple targets)
    @cython.locals(addresses=Ranges, found=list, raised=list, finding=tuple)
    cpdef list _new_read_range(self, m, Entry entry)
    cpdef _track(self, message, Entry entry)
    @cython.locals(streams=dict, found=tuple, stream=Stream, learned=dict,
                   verdicts=list, data=Py_ssize_t, width=Py_ssize_t,
                   bits=Py_ssize_t, carrying=cython.bint, key=Py_ssize_t)
    cpdef _carry(self, m, Entry entry, double ts, targets, dict fields, source,
                 slot)
    @cython.locals(served=list, dev=object)
    cpdef bint _served_normally(self, Entry entry, double ts)
    cpdef bint _normal(self, double first, double last, double ts)
    @cython.locals(novelties=Novelties, previous=dict, counts=dict)
    cpdef _note_scan(self, double ts, client, tuple novelty, list found)
    @cython.locals(base=Baseline, rel=Relation, found=list, raised=list,
                   finding=tuple)
    cpdef list _check(self, m)
    @cython.locals(ts=cython.double, base=Baseline, stats=ServiceStats,
                   fresh_rel=cython.bint, new_service=cython.bint,
                   specific=cython.bint, served=list, others=list)
    cpdef _check_ot_request(self, m, client, server, Relation rel, list found)
    cpdef _note_new_reads(self, m, double ts, client, server, Relation rel,
                          list found)
    @cython.locals(base=Baseline, known=Ranges, wrote_before=cython.bint,
                   raised=cython.bint)
    cpdef bint _check_write(self, m, client, server, Relation rel, list found)
    @cython.locals(slot=list)
    cpdef _check_values(self, m, client, server, Relation rel, list found,
                        bint written)
    cpdef set _writers_of(self, server)
    @cython.locals(previous=dict)
    cpdef bint _throttled(self, model_name, tuple key, double ts)
    @cython.locals(raised=list, finding=tuple)
    cpdef list _raise_all(self, m, list found)
    @cython.locals(previous=dict, frames=list)
    cpdef _raise(self, m, model_name, key, score, explanation, dict evidence)

cpdef _known_values(Relation rel, tuple source, slot)
