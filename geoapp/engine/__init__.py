"""Batch engines: the record output (a folder of parts that a rerun resumes), input expansion shared by
the local engine and the Ray engine (:mod:`geoapp.engine.ray_engine`, imported only with ``--engine ray``)."""
