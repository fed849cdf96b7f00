"""Initializers: the base classes, one module per family, fans, gains, storage layouts and framework defaults."""
