"""The ``weightinit`` command line (``weightinit list|sample|doctor|compare|bench``)."""
