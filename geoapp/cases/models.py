"""ORM model of the case store (SQLAlchemy 2, typed ``Mapped[...]``).

Only ``cases`` rows are ever updated (status, title, ``updated_at``).  Evidence, claims,
analyses, notes, verdicts and the event log are append-only: a correction is a new row
(the newest verdict is the current one).  The initial migration backs this with
database triggers, so even a hand-written UPDATE cannot rewrite history.

The schema itself is created by the Alembic migrations in ``migrations/``, never by
``Base.metadata.create_all``; tests check that both agree.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("open", "decided", "archived")
VERDICTS = ("supported", "contradicted", "inconclusive")
CLAIM_KINDS = ("circle", "country", "place")


def new_id() -> str:
    """A random 32-hex-digit id (uuid4): unique across machines, so bundles never collide."""
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes, stored naive-UTC so SQLite and PostgreSQL agree."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(timezone.utc)")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        float: sa.Float(),  # double precision on both SQLite (REAL) and PostgreSQL (FLOAT)
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }


def _id_column(**kw: Any) -> Mapped[str]:
    return mapped_column(sa.String(32), primary_key=True, default=new_id, **kw)


def _case_fk() -> Mapped[str]:
    return mapped_column(sa.String(32), sa.ForeignKey("cases.id"), index=True)


class Case(Base):
    """A verification case: one claim to check, its evidence and the work done on it."""

    __tablename__ = "cases"

    id: Mapped[str] = _id_column()
    origin_id: Mapped[str] = mapped_column(sa.String(32), index=True)  # kept across bundle import
    title: Mapped[str] = mapped_column(sa.String(300))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="open")
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))
    imported_at: Mapped[dt.datetime | None]
    imported_by: Mapped[str | None] = mapped_column(sa.String(200))
    import_source: Mapped[str | None] = mapped_column(sa.String(64))  # SHA-256 of the bundle file

    evidence: Mapped[list[Evidence]] = relationship(back_populates="case", order_by="Evidence.added_at")
    claims: Mapped[list[Claim]] = relationship(order_by="Claim.created_at")
    analyses: Mapped[list[Analysis]] = relationship(order_by="Analysis.finished_at")
    notes: Mapped[list[Note]] = relationship(order_by="Note.created_at")
    verdicts: Mapped[list[Verdict]] = relationship(order_by="Verdict.created_at")
    clue_records: Mapped[list["CaseClue"]] = relationship(order_by="CaseClue.created_at")

    @property
    def clues(self) -> list["CaseClue"]:
        """The current clues: active rows that no later row replaces, oldest first."""
        replaced = {c.replaces for c in self.clue_records if c.replaces}
        return [c for c in self.clue_records if c.active and c.id not in replaced]

    __table_args__ = (sa.CheckConstraint(f"status IN {STATUSES!r}", name="ck_cases_status"),)

    @property
    def verdict(self) -> Verdict | None:
        """The current (newest) verdict, if any."""
        return self.verdicts[-1] if self.verdicts else None


class Evidence(Base):
    """One image file, stored by SHA-256; ``original_name`` is display metadata only."""

    __tablename__ = "evidence"

    id: Mapped[str] = _id_column()
    case_id: Mapped[str] = _case_fk()
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    original_name: Mapped[str] = mapped_column(sa.String(500))
    format: Mapped[str | None] = mapped_column(sa.String(20))
    file_size: Mapped[int] = mapped_column(sa.BigInteger)
    width: Mapped[int]
    height: Mapped[int]
    exif: Mapped[dict[str, Any]]
    added_at: Mapped[dt.datetime]
    added_by: Mapped[str] = mapped_column(sa.String(200))
    # Videos (migration 0002): "image", "video", or "frame" (a keyframe derived from the video ``parent_id``).
    kind: Mapped[str] = mapped_column(sa.String(10), default="image", server_default="image")
    parent_id: Mapped[str | None] = mapped_column(sa.String(32), index=True)
    time_s: Mapped[float | None]  # a frame's time in its video, seconds
    media: Mapped[dict[str, Any] | None]  # video: container facts; frame: shot, pHash, wall-clock time

    case: Mapped[Case] = relationship(back_populates="evidence")

    __table_args__ = (sa.UniqueConstraint("case_id", "sha256", name="uq_evidence_case_sha256"),)

    @property
    def gps(self) -> tuple[float, float] | None:
        lat, lon = (self.exif or {}).get("gps_lat"), (self.exif or {}).get("gps_lon")
        return (float(lat), float(lon)) if lat is not None and lon is not None else None


class Claim(Base):
    """Where (and when) the photo is claimed to have been taken, and who says so."""

    __tablename__ = "claims"

    id: Mapped[str] = _id_column()
    case_id: Mapped[str] = _case_fk()
    kind: Mapped[str] = mapped_column(sa.String(10))
    place_text: Mapped[str] = mapped_column(sa.String(500))  # as the analyst typed it
    label: Mapped[str] = mapped_column(sa.String(300))  # resolved, human readable
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    radius_km: Mapped[float | None]
    country_code: Mapped[str | None] = mapped_column(sa.String(8))
    region_key: Mapped[str] = mapped_column(sa.String(120))  # geoapp.geo.regions key
    claimed_time: Mapped[str | None] = mapped_column(sa.String(40))  # ISO 8601 date or datetime
    source: Mapped[str] = mapped_column(sa.Text, default="")  # source text or URL
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (sa.CheckConstraint(f"kind IN {CLAIM_KINDS!r}", name="ck_claims_kind"),)


class Analysis(Base):
    """One model run on one evidence file: exactly which model, weights, settings, and result."""

    __tablename__ = "analyses"

    id: Mapped[str] = _id_column()
    case_id: Mapped[str] = _case_fk()
    evidence_id: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("evidence.id"), index=True)
    evidence_sha256: Mapped[str] = mapped_column(sa.String(64))  # verified just before the run
    model: Mapped[str] = mapped_column(sa.String(40))
    backbone: Mapped[str] = mapped_column(sa.String(80))
    backbone_weights: Mapped[str] = mapped_column(sa.String(300))
    weights_sha256: Mapped[str | None] = mapped_column(sa.String(64))  # checksum of the model heads
    random_weights: Mapped[bool]
    model_identity: Mapped[dict[str, Any]]  # Geolocator.describe()
    app_version: Mapped[str] = mapped_column(sa.String(40))
    parameters: Mapped[dict[str, Any]]  # top_k, tencrop, region, merge_km ...
    candidates: Mapped[list[Any]]
    mass_within_km: Mapped[dict[str, Any]]
    surface: Mapped[dict[str, Any]]  # the most probable points (see ProbabilitySurface.top)
    claim_mass: Mapped[dict[str, Any]]  # region_key -> exact probability mass at analysis time
    warnings: Mapped[list[Any]]
    gradcam_sha256: Mapped[str | None] = mapped_column(sa.String(64))  # PNG in the evidence store
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))

    evidence: Mapped[Evidence] = relationship()


class Note(Base):
    """Free analyst text."""

    __tablename__ = "notes"

    id: Mapped[str] = _id_column()
    case_id: Mapped[str] = _case_fk()
    text: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))


class Verdict(Base):
    """The analyst's conclusion, with the figures computed when it was given."""

    __tablename__ = "verdicts"

    id: Mapped[str] = _id_column()
    case_id: Mapped[str] = _case_fk()
    claim_id: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("claims.id"))
    analysis_id: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("analyses.id"))
    verdict: Mapped[str] = mapped_column(sa.String(20))
    rationale: Mapped[str] = mapped_column(sa.Text)
    distance_km: Mapped[float | None]  # claim -> top candidate of the chosen analysis
    mass_in_claim: Mapped[float | None]
    claim_rank: Mapped[int | None]
    exif_distance_km: Mapped[float | None]
    figures: Mapped[dict[str, Any]]  # everything, per analysis and per evidence
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (sa.CheckConstraint(f"verdict IN {VERDICTS!r}", name="ck_verdicts_verdict"),)


class CaseClue(Base):
    """An analyst's clue (evidence fusion, CLI syntax) as evidence of the case. Append-only: an edit or a
    removal is a new row that ``replaces`` the old one (``active`` False for a removal); the current clues
    are the active rows nothing replaces."""

    __tablename__ = "case_clues"

    id: Mapped[str] = _id_column()
    case_id: Mapped[str] = _case_fk()
    text: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.String(20))
    source: Mapped[str] = mapped_column(sa.Text, default="")  # where the clue came from (analyst, EXIF, a URL)
    active: Mapped[bool]
    replaces: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("case_clues.id"))
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(200))


class Event(Base):
    """Append-only audit log: what changed, when, by whom."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    case_id: Mapped[str] = _case_fk()
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(40))
    entity_type: Mapped[str] = mapped_column(sa.String(20))
    entity_id: Mapped[str | None] = mapped_column(sa.String(32))
    details: Mapped[dict[str, Any]]
    imported: Mapped[bool] = mapped_column(default=False)  # recorded elsewhere, came in a bundle


APPEND_ONLY_TABLES = ("evidence", "claims", "analyses", "notes", "verdicts", "case_events", "case_clues")
