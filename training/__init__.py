"""Training and evaluation for geoapp's models (issue 6).

Modules (``training`` imports ``geoapp``, never the reverse):

* ``data``            dataset specs and readers for the MP-16 / Im2GPS / Im2GPS3k / YFCC4k /
                      YFCC26k CSV layouts; image datasets that skip and count bad images
* ``shards``          WebDataset-style ``.tar`` shards (``{key}.jpg`` + ``{key}.json``), stdlib only
* ``features``        ``python -m training.features``: frozen-CLIP features, sharded, resumable,
                      float16 memory-mapped ``.npy``; each ``torchrun`` rank takes its units
* ``feature_store``   reading those feature folders (``FeatureStore``, ``FeatureDataset``)
* ``gps``             the dynamic GPS queue and the GPS noise (metres on the ground)
* ``heads``           the trainable GeoCLIP parts, pretrained initialisation, the finer Fourier branch
* ``objective``       the contrastive image->[batch GPS ; queue GPS] loss
* ``augment``         SimCLR-style views for training from images
* ``distributed``     torchrun/DDP helpers (gloo on CPU, nccl on GPU)
* ``train_geoclip``   ``python -m training.train_geoclip``: the contrastive trainer
* ``evaluate``        ``python -m training.evaluate``: accuracy at 1/25/200/750/2500 km and more
* ``gallery_ceiling`` ``python -m training.gallery_ceiling``: the best any retrieval over a gallery can do
* ``tables``          result rows, the published numbers, Markdown/CSV tables

Nothing heavy is imported here, so ``python -m training.X`` starts quickly. See README.md here
for the workflow and the choices made.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
"""``../shared`` beside the checkout: benchmark CSVs and test photos (read in place, never copied)."""
