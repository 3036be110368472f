"""Location galleries for the retrieval families: CSV galleries and their embedding cache, prebuilt galleries,
and the global dense gallery (memory-mapped embeddings searched through geoapp.index)."""
