"""OCI: ``registry`` (the generic registry client) and ``artifact`` (Flux's artifact format on top of it)."""
