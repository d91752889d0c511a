"""Protocol dissectors shipped with otdpi, one module per protocol, found as plugins."""
