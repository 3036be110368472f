"""The optional local worker (``geoapp serve``): one process holds a loaded model family and answers the
``geoapp predict`` calls made with the same model options, so repeated command-line calls cost one forward each
instead of a model load each.

* :mod:`.protocol`: the files (state, token, socket) in a private folder, length-prefixed JSON messages, mutual
  HMAC authentication with the token (stdlib only).
* :mod:`.identity`: what makes two model set-ups the same (family, options, weight files, code, environment),
  computed from the command line without loading anything.
* :mod:`.server`: the worker process. :mod:`.client`: finding a matching worker and calling it; every way it can
  fail becomes :class:`~geoapp.cli.worker.client.WorkerUnavailable`, and the caller predicts in-process.
"""
