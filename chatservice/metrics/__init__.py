"""
What the chat counts and how it is read: :mod:`.counters` are the plain
integers the hot paths add to (no lock, no call), :mod:`.collector` turns
them into Prometheus metrics when scraped, :mod:`.health` says whether the
chat can serve, and :mod:`.web` serves ``/metrics`` and ``/healthz``
(``--metrics ENDPOINT``, ``docs/metrics.rst``).  ``/stats`` reads the same
counters: there is one set, read two ways.
"""
