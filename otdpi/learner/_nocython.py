"""What the learner uses of Cython's pure-Python module, where Cython is not installed.

The compiled learner's sources name ``cython.compiled`` and ``cython.cast``;
interpreted, Cython's own module answers them when it is installed, and this
stand-in when it is not.
"""


class cython:  # noqa: N801 - stands in for the module of that name
    compiled = False

    @staticmethod
    def cast(kind, value):
        return value
