"""The harmonic executor: perception stream, inference worker, action stream, safety."""
