"""Per-frame logic: no threads, no I/O beyond loading a model at build time. detect -> track -> attributes -> events reads here."""
