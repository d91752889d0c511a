"""HL7 v2 over MLLP dissector (stub while it is written)."""
from otdpi.dissector import Dissector
class Hl7Dissector(Dissector):
    name = "hl7"
    @classmethod
    def probe(cls, data, to_server):
        return False
