"""Verification cases: evidence, claims, analyses, notes, verdicts, with an audit trail.

Service API (what the CLI and the UI call)::

    from geoapp.cases import CaseStore
    store = CaseStore.open()                       # GEOAPP_DATABASE_URL / GEOAPP_CASE_STORE
    case = store.create_case("Kharkiv photo", actor="alice")
    ev = store.add_evidence(case.id, data, "IMG_1.jpg", actor="alice")
    store.add_claim(case.id, "Kharkiv", claimed_time="2024-03-01", source="https://...", actor="alice")
    store.run_analysis(case.id, ev.id, locator, top_k=5, actor="alice")
    store.add_note(case.id, "Shadows point north-east", actor="alice")
    store.set_verdict(case.id, "contradicted", "…", actor="alice")
    opened = store.open_case(case.id)              # .case, .problems (integrity), .events
    html = render_html(store, case.id)             # + to_geojson, to_kml, to_csv
    export_case(store, case.id, "html", "report.html", actor="alice")   # any format, written + audited
    export_bundle(store, case.id, "case.zip", actor="alice"); import_bundle(other, "case.zip", actor="bob")

Modules: ``settings`` (where), ``models`` (ORM), ``db`` (engine, migrations), ``blobs``
(content-addressed files), ``claims`` (place/time parsing), ``figures`` (verdict numbers),
``service`` (CaseStore), ``dump`` (documents), ``geoexport`` (GeoJSON/KML/CSV),
``svgmap`` + ``report`` (HTML), ``bundle`` (zip export/import), ``exports`` (one entry point
for every format), ``cli``.

Imports are lazy so ``python -m geoapp --help`` does not pay for SQLAlchemy.
"""

from __future__ import annotations

_EXPORTS = {
    "CaseStore": "service", "OpenedCase": "service", "IntegrityProblem": "service", "CaseSummary": "service",
    "default_actor": "service",
    "CaseSettings": "settings", "get_case_settings": "settings",
    "CaseError": "errors", "CaseInputError": "errors", "CaseNotFoundError": "errors",
    "DuplicateEvidenceError": "errors", "DuplicateCaseError": "errors", "EvidenceIntegrityError": "errors",
    "StoreWriteError": "errors", "BundleError": "errors",
    "render_html": "report", "to_geojson": "geoexport", "to_kml": "geoexport", "to_csv": "geoexport",
    "export_bundle": "bundle", "import_bundle": "bundle", "export_case": "exports", "ExportResult": "exports",
    "case_document": "dump", "canonical_dump": "dump", "fingerprint": "dump",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geoapp.cases' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"geoapp.cases.{module}"), name)
