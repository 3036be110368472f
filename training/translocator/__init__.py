"""TransLocator training (issue 7): data, the optimisation loop, evaluation, and the SatWorld run.

* ``augment``        the paper's augmentation on a photo and its segmentation map (one geometry)
* ``data``           dataset CSV + images + segmentation maps (stored PNGs or a segmenter on the
                     fly) + geocell / scene labels; model inputs (normalised photo and colourised map)
* ``engine``         SGD + warm-up + MultiStepLR, gradient accumulation, bf16 autocast, DDP,
                     checkpoints (inference file + resumable state)
* ``train``          ``python -m training.translocator.train``: training on photos (torchrun-ready)
* ``evaluate``       ``python -m training.translocator.evaluate``: a checkpoint on a benchmark (TenCrop)
* ``satworld_data``  Blue Marble crops + land/sea/colour segmentation maps with the same geometry
* ``satworld``       ``python -m training.translocator.satworld``: the CPU SatWorld experiment

Geocells come from :mod:`geoapp.geo.geocells` (``python -m training.partition`` writes them);
the model from :mod:`geoapp.families.translocator.network`.
"""
