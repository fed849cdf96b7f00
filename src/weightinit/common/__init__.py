"""The contract layer: errors, argument checks, shapes, dtypes and shared types.

Every other layer imports from here; this package imports nothing else of weightinit.
"""
