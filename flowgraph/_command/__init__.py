"""The ``flowgraph`` command line."""
