"""Tailor data layer: canonical schema, source adapters, validation, quarantine, features.

No torch here; `training` and `serving` build on this package.
"""
