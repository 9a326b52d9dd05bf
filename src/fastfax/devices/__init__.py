"""Device kinds: the plug-ins that put the fax service's calls on lines.

:mod:`.contract` is what every kind implements and what the service gives it; the kinds
shipped here are :mod:`.loopback` (a pair of in-memory lines) and :mod:`.class1` (a
Class 1 fax modem). The service loads kinds only through the ``fastfax.devices`` entry
points, never by importing these modules.
"""
