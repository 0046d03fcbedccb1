"""Teacher adapters; each module registers itself with :mod:`pseudolabel.registry` on import."""
