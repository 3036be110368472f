"""Generated test videos: "flyovers" over NASA rasters (``flyover``), encoded with PyAV (no third-party video)."""
