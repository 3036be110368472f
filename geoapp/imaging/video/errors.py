"""VideoLoadError: a video that cannot be read, worded for the analyst (a leaf module)."""

from __future__ import annotations

from ..errors import ImageLoadError


class VideoLoadError(ImageLoadError):
    """``"clip.mp4: the file is truncated or damaged (no moov index)"``.

    A subclass of :class:`~geoapp.imaging.ImageLoadError`, so the batch path that records an unreadable
    photo and carries on does the same for an unreadable video.
    """
