"""The fax service: one spool, its ports, its queue, its users (the Windows 2000 fax
service's capabilities).

:mod:`.server` is the service (every client call, with its right); :mod:`.scheduler`
puts jobs on lines and routes received faxes; :mod:`.ports` is the port table they
share; :mod:`.store` the database and :mod:`.spool` the files; :mod:`.devices` finds
device kinds through entry points; :mod:`.routing` the inbound routing methods;
:mod:`.rights`, :mod:`.events`, :mod:`.config`, :mod:`.model`, :mod:`.errors` what
their names say; :mod:`.http` serves it and :mod:`.remote` reaches it over HTTP
(:mod:`.wire` is what they exchange). Clients use :func:`fastfax.connect`.
"""
