"""Reference matches: the analyst's own photos that a new photo resembles most (torch-free).

The old Im2GPS idea (nearest neighbours in a geotagged collection), applied to the collection a
regional model was built from: cosine similarity on the same frozen features the model uses.
Thumbnails are small JPEGs stored beside the checkpoint when the model was built.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from geoapp.families.base import EvidenceItem, png_data_uri


@dataclass(frozen=True)
class ReferenceMatch:
    """One similar reference photo."""

    rank: int
    name: str  # file name in the collection
    lat: float
    lon: float
    similarity: float  # cosine on the model's features, -1..1
    distance_to_top_km: float | None  # from the prediction's top candidate
    thumbnail: str | None = None  # path of the thumbnail file (None when the model keeps none)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("thumbnail")
        return data


class ReferenceMatches(EvidenceItem):
    """The most similar photos of the model's reference collection, with where they were taken."""

    key = "reference_matches"
    title = "Most similar reference photos (your collection)"

    def __init__(self, matches: list[ReferenceMatch]) -> None:
        self.matches = list(matches)

    def to_dict(self) -> list[dict]:
        return [match.to_dict() for match in self.matches]

    def images(self) -> dict[str, Image.Image]:
        shown = {}
        for match in self.matches:
            image = _thumbnail(match)
            if image is not None:
                shown[f"reference-{match.rank}"] = image
        return shown

    def html(self) -> str:
        if not self.matches:
            return "<p>This model keeps no reference photos.</p>"
        rows = []
        for match in self.matches:
            image = _thumbnail(match)
            thumb = (f'<img alt="reference {match.rank}" style="max-width:96px;max-height:96px" '
                     f'src="{png_data_uri(image, 128)}">' if image is not None else "")
            distance = "" if match.distance_to_top_km is None else f"{match.distance_to_top_km:,.0f} km"
            rows.append(f"<tr><td>{match.rank}</td><td>{thumb}</td><td>{html.escape(match.name)}</td>"
                        f"<td>{match.lat:.5f}, {match.lon:.5f}</td><td>{match.similarity:.3f}</td>"
                        f"<td>{distance}</td></tr>")
        return ('<table class="geoapp-references"><tr><th>#</th><th></th><th>photo</th><th>taken at</th>'
                "<th>similarity</th><th>from top candidate</th></tr>" + "".join(rows) + "</table>"
                "<p><small>Cosine similarity on the model's image features; a similar-looking photo is a "
                "lead to check, not proof of place.</small></p>")


def _thumbnail(match: ReferenceMatch) -> Image.Image | None:
    if not match.thumbnail or not Path(match.thumbnail).is_file():
        return None
    try:
        with Image.open(match.thumbnail) as image:
            return image.convert("RGB")
    except OSError:
        return None  # a damaged thumbnail must not break the result view
