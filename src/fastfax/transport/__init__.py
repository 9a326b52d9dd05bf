"""Transports that carry a T.30 session: a Class 1 modem (:mod:`.class1`, over
:mod:`.modem`) and an in-memory loopback."""
