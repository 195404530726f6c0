"""The gateway's pure cores: presence, door fusion, fitting rooms, shelves, footfall, attribution,
conversation figures, codecs (EID, EPC) and charts. Data and timestamps in, data out: no I/O, no clock.

See docs/architecture.md for the layers."""
