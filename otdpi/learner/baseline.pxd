# C types of otdpi/learner/baseline.py for the compiled learner (see setup.py).
# Only what the hot path touches is typed; every name stays visible to Python.
cimport cython

cdef long long _SMALL

cpdef object tuple_item(object values, Py_ssize_t index)
cpdef Py_ssize_t address_of(object value)

cpdef Py_ssize_t run_after(list bounds, object address) except -1
@cython.locals(low=Py_ssize_t, high=Py_ssize_t, middle=Py_ssize_t,
               bound=cython.longlong)
cdef Py_ssize_t _search_after(list bounds, long long address) except -1

cdef class Ranges:
    cdef public list starts
    cdef public list ends
    cpdef bint covers(self, start, end)
    @cython.locals(starts=list, ends=list, i=Py_ssize_t, j=Py_ssize_t,
                   k=Py_ssize_t)
    cpdef bint add(self, start, end)

cdef class ServiceStats:
    cdef public long long count
    cdef public long long requests
    cdef public double first
    cdef public double last
    cdef public list gaps
    cpdef object period(self, long long min_gaps=*, double max_cv=*)

cdef class Relation:
    cdef public long long count
    cdef public double first
    cdef public double last
    cdef public dict services
    cdef public dict actions
    cdef public dict addresses
    cdef public dict values
    cdef public list sizes
    cdef public list response_us
    cdef public dict carriers

cdef class Entry:
    cdef public Relation rel
    cdef public ServiceStats stats
    cdef public tuple clock_key
    cdef public list clock
    cdef public bint request
    cdef public bint fast
    cdef public bint rated
    cdef public object ranges_action
    cdef public object ranges_space
    cdef public Ranges ranges
    cdef public list sizes
    cdef public list took
    cdef public object cadence
    cdef public bint established
    cdef public object served
    cdef public object flood
    cpdef Ranges address_set(self, action, space)

cdef class Baseline:
    cdef public dict relations
    cdef public dict devices
    cdef public double first_seen
    cdef public double last_seen
    cdef public dict _cache
    cdef public dict _flow_entries
    cdef public object learned_until
    cdef public long long messages
    cdef public object clock
    cdef public dict macs
    cdef public dict points

    @cython.locals(flows=dict, services=dict, known=list, seen=tuple)
    cpdef cached_in_flow(self, flow, src_ip, dst_ip, protocol, kind, service, sub)
    cpdef learn_entry(self, Entry entry, message, values=*, bint covered=*)
    @cython.locals(rel=Relation, stats=ServiceStats, clock=list, moments=list,
                   sizes=list, actions=dict, addresses=Ranges, learned=dict)
    cpdef learn_request(self, Entry entry, double ts, action, tuple targets,
                        dict fields, values=*, bint covered=*, slot=*)
    @cython.locals(rel=Relation, stats=ServiceStats, took=list, sizes=list,
                   actions=dict, learned=dict)
    cpdef learn_response(self, Entry entry, double ts, action, tuple targets,
                         dict fields, values=*, slot=*)

cpdef tuple mean_std(list moments)
@cython.locals(count=object)
cpdef value_source(tuple targets, dict fields)
@cython.locals(items=list, low=cython.longlong, high=cython.longlong,
               number=cython.longlong, first=cython.bint)
cpdef range_of(tuple source)
@cython.locals(key=object, lo=object, hi=object)
cpdef _learn_values(dict learned, tuple values, slot=*)
@cython.locals(total=cython.longlong, squares=cython.longlong, low=cython.longlong,
               high=cython.longlong, number=cython.longlong, first=cython.bint)
cpdef fold_moments(list moments, list values)
