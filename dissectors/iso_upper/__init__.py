"""The OSI upper layers MMS runs on: ISO 8327 session, ISO 8823 presentation, ACSE.

``ber``
    the bounded BER TLV walker every layer here (and MMS, GOOSE) uses.
``session``, ``presentation``, ``acse``
    one module per layer, each decoding its PDUs into plain fields.
``asn1``
    pyasn1 definitions of the same PDUs, the source of truth the tests
    hold the hand-written decoders to.
"""
