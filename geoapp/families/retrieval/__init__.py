"""Shared parts of the GeoCLIP-style retrieval families (not a family itself): the retrieval locator (image
embedding vs location-encoder embeddings of a gallery, region prior, vector index, fine refinement, text, Grad-CAM),
its refinement evidence and options. GeoCLIP (CLIP ViT-L/14 image tower) and SatWorld (small ViT) both build it."""
