"""``python -m geoapp case ...``: the case workflow from the command line.

Scriptable: commands that create something print its id alone on standard output (details
go to standard error), ``--json`` prints machine-readable records instead, errors are one
``error: ...`` line with exit status 1 (2 for bad input).  The store comes from
``GEOAPP_DATABASE_URL`` / ``GEOAPP_CASE_STORE`` or ``--database-url`` / ``--case-store``;
the actor recorded in the audit trail from ``--actor``, ``$GEOAPP_ACTOR`` or the OS user.

Only argparse is imported at module level so ``python -m geoapp --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from geoapp.cli.family import add_model_arguments

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXPORT_FORMATS = ("html", "geojson", "kml", "csv", "bundle")


def add_case_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``case`` and its subcommands on the main parser's subparsers."""
    p = sub.add_parser("case", help="verification cases: evidence, claims, analyses, verdicts, reports",
                       description="Verification cases. Every change is recorded in the case's audit trail.")
    csub = p.add_subparsers(dest="case_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")
    common.add_argument("--actor", default=None, help="who makes the change (default: $GEOAPP_ACTOR or the OS user)")
    common.add_argument("--database-url", default=None, help="case database (default: $GEOAPP_DATABASE_URL or "
                        "an SQLite file in the user data folder)")
    common.add_argument("--case-store", default=None, help="evidence folder (default: $GEOAPP_CASE_STORE)")

    def add(name: str, help_text: str, handler: Callable[[argparse.Namespace, Any], int]) -> argparse.ArgumentParser:
        parser = csub.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(handler=_wrap(handler))
        return parser

    new = add("new", "create a case and print its id", _cmd_new)
    new.add_argument("title")
    new.add_argument("--description", default="")

    listing = add("list", "list cases, most recently changed first", _cmd_list)
    listing.add_argument("--status", default=None, choices=("open", "decided", "archived"))

    show = add("show", "show a case (re-verifies evidence hashes; exit 1 if a file is missing or altered)", _cmd_show)
    show.add_argument("case_id", metavar="CASE_ID")

    add_ev = add("add", "add image or video files (files, folders, globs) as evidence; one line per file (a video: "
                        "the file plus its keyframes as derived evidence)", _cmd_add)
    add_ev.add_argument("case_id", metavar="CASE_ID")
    add_ev.add_argument("paths", nargs="+", metavar="PATH")

    claim = add("claim", "record the claim: place (name, country, LAT,LON or circle:LAT,LON,KM), time, source",
                _cmd_claim)
    claim.add_argument("case_id", metavar="CASE_ID")
    claim.add_argument("place", metavar="PLACE")
    claim.add_argument("--radius-km", type=float, default=None, help="radius around a named place or LAT,LON (default 25)")
    claim.add_argument("--time", default=None, help="claimed time, ISO 8601 (2024-03-01 or 2024-03-01T14:30)")
    claim.add_argument("--source", default="", help="where the claim comes from (text or URL)")

    analyze = add("analyze", "run the geolocation model on evidence (all evidence unless EVIDENCE_ID given)",
                  _cmd_analyze)
    analyze.add_argument("case_id", metavar="CASE_ID")
    analyze.add_argument("evidence_ids", nargs="*", metavar="EVIDENCE_ID")
    analyze.add_argument("--top-k", type=int, default=5, help="distinct candidate places (default 5)")
    analyze.add_argument("--region", default=None, help='restrict the search, as for predict ("FR", "circle:LAT,LON,KM" ...)')
    analyze.add_argument("--tencrop", action="store_true", help="average the logits of 10 crops")
    add_model_arguments(analyze)  # --model (every registered family), --checkpoint, --backbone-weights ...
    analyze.add_argument("--merge-km", type=float, default=None, help="merge candidates closer than this")
    analyze.add_argument("--gradcam", action="store_true",
                         help="also store the Grad-CAM of the top candidate (shown in the HTML report)")

    clue = add("clue", 'add, edit or remove a clue (evidence fusion, as predict --clue: "sun:time=...,ratio=...", '
                       '"tz:offset=+02:00,time=...", "drive:left" ...); every change is in the audit trail', _cmd_clue)
    clue.add_argument("case_id", metavar="CASE_ID")
    clue.add_argument("clue", nargs="?", default=None, metavar="CLUE")
    clue.add_argument("--source", default="analyst", help="where the clue comes from (text or URL)")
    clue.add_argument("--edit", default=None, metavar="CLUE_ID", help="replace this clue by CLUE")
    clue.add_argument("--remove", default=None, metavar="CLUE_ID", help="remove this clue")

    note = add("note", 'add an analyst note (TEXT "-" reads standard input)', _cmd_note)
    note.add_argument("case_id", metavar="CASE_ID")
    note.add_argument("text", metavar="TEXT")

    verdict = add("verdict", "record a verdict with computed figures (claim vs. model vs. EXIF)", _cmd_verdict)
    verdict.add_argument("case_id", metavar="CASE_ID")
    verdict.add_argument("verdict", choices=("supported", "contradicted", "inconclusive"))
    verdict.add_argument("--rationale", required=True, help="why (required)")
    verdict.add_argument("--claim", default=None, help="claim id (default: the newest claim)")
    verdict.add_argument("--analysis", default=None, help="analysis id (default: the newest analysis)")

    export = add("export", "export a case: html report, geojson, kml, csv of analyses, or a bundle zip", _cmd_export)
    export.add_argument("case_id", metavar="CASE_ID")
    export.add_argument("format", choices=EXPORT_FORMATS)
    export.add_argument("--output", "-o", default=None, help="file to write (required for bundle; else stdout)")

    imp = add("import", "import a case bundle (verifies every hash). The imported case keeps its origin, so a "
                        "bundle of a case already in the store is refused unless --new-id is given", _cmd_import)
    imp.add_argument("bundle", metavar="BUNDLE")
    imp.add_argument("--new-id", action="store_true",
                     help="import even if this case (same origin) is already in the store, as a separate copy "
                          "with a new origin")


# ---------------------------------------------------------------------------- plumbing
def _wrap(handler: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from geoapp.cases.errors import CaseError, CaseInputError
        from geoapp.cases.service import CaseStore

        try:
            store = CaseStore.open(database_url=args.database_url, store_dir=args.case_store)
        except CaseError as error:
            print(f"error: {_t(error)}", file=sys.stderr)
            return EXIT_FAILED
        try:
            return handler(args, store)
        except CaseInputError as error:
            print(f"error: {_t(error)}", file=sys.stderr)
            return EXIT_USAGE
        except CaseError as error:
            print(f"error: {_t(error)}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            store.close()
    return run


def _emit(args: argparse.Namespace, plain: str, record: Any) -> None:
    from geoapp.results.textsafe import terminal_json

    print(terminal_json(json.dumps(record, indent=2, ensure_ascii=False, default=str)) if args.json else plain)


def _info(text: str) -> None:
    print(text, file=sys.stderr)


def _t(value: Any) -> str:
    """Stored text (titles, names, notes: possibly imported) for the terminal: controls shown, not run."""
    from geoapp.results.textsafe import terminal_text

    return terminal_text(value)


# ---------------------------------------------------------------------------- commands
def _cmd_new(args: argparse.Namespace, store: Any) -> int:
    case = store.create_case(args.title, args.description, actor=args.actor)
    _emit(args, case.id, {"id": case.id, "title": case.title, "status": case.status})
    return EXIT_OK


def _cmd_list(args: argparse.Namespace, store: Any) -> int:
    cases = store.list_cases(args.status)
    if args.json:
        _emit(args, "", [c.to_dict() for c in cases])
    else:
        for c in cases:
            print(f"{c.id}\t{c.status}\t{c.evidence} evidence\t{c.analyses} analyses\t{c.verdict or '-'}\t"
                  f"{_t(c.title)}")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace, store: Any) -> int:
    from geoapp.cases.dump import case_document, fingerprint

    opened = store.open_case(store.resolve_case_id(args.case_id), actor=args.actor)
    case = opened.case
    doc = case_document(case, opened.events)
    if args.json:
        _emit(args, "", {**doc, "fingerprint": fingerprint(doc), "problems": [p.to_dict() for p in opened.problems]})
    else:
        print(f"{case.id}  {_t(case.title)}  [{case.status}]")
        print(f"  created {case.created_at:%Y-%m-%d %H:%M} UTC by {_t(case.created_by)}; "
              f"fingerprint {fingerprint(doc)[:16]}")
        for c in case.claims:
            print(f"  claim {c.id}: {_t(c.label)}" + (f", time {_t(c.claimed_time)}" if c.claimed_time else ""))
        for e in case.evidence:
            gps = f", EXIF GPS {e.gps[0]:.5f},{e.gps[1]:.5f}" if e.gps else ""
            print(f"  evidence {e.id}: {_t(e.original_name)} sha256 {e.sha256[:16]}… {e.width}x{e.height}{gps}")
        for a in case.analyses:
            top = a.candidates[0] if a.candidates else {}
            flag = " RANDOM WEIGHTS" if a.random_weights else ""
            print(f"  analysis {a.id}: {_t(a.model)}/{_t(a.backbone)} top {_t(top.get('place', '?'))} "
                  f"({top.get('probability', 0):.1%}){flag}")
        for c in case.clues:
            print(f"  clue {c.id}: {_t(c.text)} (from {_t(c.source)})")
        for n in case.notes:
            print(f"  note {n.id} ({_t(n.created_by)}): {_t(n.text[:80])}")
        if case.verdict:
            v = case.verdict
            print(f"  verdict {v.id}: {v.verdict.upper()} — {_t(v.rationale[:80])}")
        for p in opened.problems:
            print(f"  INTEGRITY PROBLEM: {_t(p.message)}")
    for p in opened.problems:
        _info(f"warning: {_t(p.message)}")
    return EXIT_FAILED if opened.problems else EXIT_OK


def _cmd_add(args: argparse.Namespace, store: Any) -> int:
    from geoapp.imaging import iter_image_paths
    from geoapp.imaging.video import is_video_path

    from geoapp.cases.errors import CaseError, DuplicateEvidenceError
    from geoapp.cases.videos import add_video_file

    case_id = store.resolve_case_id(args.case_id)
    records, failed = [], 0
    for path in iter_image_paths(args.paths):
        try:
            if is_video_path(str(path)):
                added = add_video_file(store, case_id, path, actor=args.actor)
                ev = added.video
                frames = {"frames": [{"evidence_id": f.id, "time_s": f.time_s, "sha256": f.sha256}
                                     for f in added.frames]}
            else:
                ev, frames = store.add_evidence_file(case_id, path, actor=args.actor), {}
            record = {"path": str(path), "status": "added", "evidence_id": ev.id, "sha256": ev.sha256, **frames}
            line = f"added\t{ev.id}\t{_t(path)}" + (f"\t(video, {len(frames['frames'])} keyframes)" if frames else "")
        except DuplicateEvidenceError as error:
            record = {"path": str(path), "status": "duplicate", "evidence_id": error.existing_id}
            line = f"duplicate\t{error.existing_id}\t{_t(path)}"
        except CaseError as error:
            failed += 1
            record = {"path": str(path), "status": "error", "error": str(error)}
            line = f"error\t-\t{_t(path)}\t{_t(error)}"
        records.append(record)
        if not args.json:
            print(line, flush=True)
    if args.json:
        _emit(args, "", records)
    if not records:
        print("error: no input files", file=sys.stderr)
        return EXIT_USAGE
    _info(f"{len(records)} file(s): {sum(r['status'] == 'added' for r in records)} added, "
          f"{sum(r['status'] == 'duplicate' for r in records)} already present, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_claim(args: argparse.Namespace, store: Any) -> int:
    case_id = store.resolve_case_id(args.case_id)
    claim = store.add_claim(case_id, args.place, radius_km=args.radius_km, claimed_time=args.time,
                            source=args.source, actor=args.actor)
    if not args.json:
        _info(f"claim: {_t(claim.label)} ({_t(claim.region_key)})")
    _emit(args, claim.id, {"id": claim.id, "label": claim.label, "kind": claim.kind, "region": claim.region_key,
                           "lat": claim.lat, "lon": claim.lon, "radius_km": claim.radius_km,
                           "country_code": claim.country_code, "claimed_time": claim.claimed_time})
    return EXIT_OK


def _cmd_analyze(args: argparse.Namespace, store: Any) -> int:
    from geoapp.geo.regions import parse_region

    from geoapp.cases.errors import CaseError

    case_id = store.resolve_case_id(args.case_id)
    if not 1 <= args.top_k <= 1000:
        raise ValueError(f"--top-k must be between 1 and 1000; got {args.top_k}")
    region = parse_region(args.region) if args.region else None  # a bad region fails before the model loads
    from geoapp.cases.videos import analysable

    chosen = [store.resolve_evidence_id(case_id, e) for e in args.evidence_ids or []]
    evidence_ids = [e.id for e in analysable(list(store.get_case(case_id).evidence), chosen)]  # video: its frames
    if not evidence_ids:
        print("error: the case has no evidence to analyse; add some with `case add`", file=sys.stderr)
        return EXIT_USAGE
    from geoapp.cli.family import load_family_from_args

    locator = load_family_from_args(args, info=_info)
    records, failed = [], 0
    for evidence_id in evidence_ids:
        try:
            a = store.run_analysis(case_id, evidence_id, locator, top_k=args.top_k, region=region,
                                   tencrop=args.tencrop, merge_km=args.merge_km, explain=args.gradcam,
                                   actor=args.actor)
        except CaseError as error:
            failed += 1
            records.append({"evidence_id": evidence_id, "status": "error", "error": str(error)})
            if not args.json:
                print(f"error\t{evidence_id}\t{_t(error)}", flush=True)
            continue
        top = a.candidates[0] if a.candidates else {}
        records.append({"evidence_id": evidence_id, "status": "ok", "analysis_id": a.id, "top": top,
                        "random_weights": a.random_weights})
        if not args.json:
            print(f"{a.id}\t{evidence_id}\t{_t(top.get('place', '?'))}\t{top.get('probability', 0):.4f}", flush=True)
    if args.json:
        _emit(args, "", records)
    if locator.random_weights:
        _info("WARNING: random weights — these analyses are meaningless (test mode).")
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_clue(args: argparse.Namespace, store: Any) -> int:
    from geoapp.cases.clues import add_clue, edit_clue, remove_clue
    from geoapp.cases.errors import CaseInputError

    case_id = store.resolve_case_id(args.case_id)
    if args.remove:
        row = remove_clue(store, case_id, args.remove, actor=args.actor)
    elif not args.clue:
        raise CaseInputError('give the clue, e.g. case clue CASE "drive:left" (or --remove CLUE_ID)')
    elif args.edit:
        row = edit_clue(store, case_id, args.edit, args.clue, source=args.source, actor=args.actor)
    else:
        row = add_clue(store, case_id, args.clue, source=args.source, actor=args.actor)
    _emit(args, row.id, {"id": row.id, "text": row.text, "kind": row.kind, "source": row.source,
                         "active": row.active, "replaces": row.replaces})
    return EXIT_OK


def _cmd_note(args: argparse.Namespace, store: Any) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    note = store.add_note(store.resolve_case_id(args.case_id), text, actor=args.actor)
    _emit(args, note.id, {"id": note.id, "chars": len(note.text)})
    return EXIT_OK


def _cmd_verdict(args: argparse.Namespace, store: Any) -> int:
    case_id = store.resolve_case_id(args.case_id)
    v = store.set_verdict(case_id, args.verdict, args.rationale, claim_id=args.claim, analysis_id=args.analysis,
                          actor=args.actor)
    if not args.json:
        for line in verdict_lines(v.verdict, v.figures, store.get_case(case_id)):
            _info(line)
    _emit(args, v.id, {"id": v.id, "verdict": v.verdict, "figures": v.figures})
    return EXIT_OK


def _km(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.1f} km"


def verdict_lines(verdict: str, figures: dict[str, Any], case: Any) -> list[str]:
    """The verdict and its figures for a person: which analysis they come from, units, percentages."""
    summary = figures.get("summary", {})
    analysis = next((a for a in case.analyses if a.id == figures.get("analysis_id")), None)
    names = {e.id: e.original_name for e in case.evidence}
    if analysis is not None:
        source = (f"analysis {analysis.id} ({_t(analysis.model)} on {_t(names.get(analysis.evidence_id, '?'))}, "
                  f"{analysis.finished_at:%Y-%m-%d %H:%M} UTC)")
    else:
        source = "no analysis"
    mass, rank = summary.get("mass_in_claim"), summary.get("claim_rank")
    claim = (figures.get("claim") or {}).get("label")
    lines = [f"verdict: {verdict.upper()}" + (f" on the claim {_t(claim)!r}" if claim else ""),
             f"  figures from {source}:",
             f"  distance from the claim to the top candidate: {_km(summary.get('distance_km'))}",
             "  probability mass inside the claimed area: " + ("—" if mass is None else f"{float(mass):.3%}"),
             "  first candidate inside the claimed area: " + ("none" if rank is None else f"#{rank}"),
             f"  distance from the EXIF GPS position to the claim: {_km(summary.get('exif_distance_km'))}"]
    lines += [f"  note: {_t(note)}" for note in figures.get("notes", [])]
    return lines


def _cmd_export(args: argparse.Namespace, store: Any) -> int:
    from geoapp.cases.exports import export_case

    case_id = store.resolve_case_id(args.case_id)
    if args.format == "bundle" and not args.output:
        print("error: a bundle needs --output FILE.zip", file=sys.stderr)
        return EXIT_USAGE
    result = export_case(store, case_id, args.format, args.output, actor=args.actor)
    if result.path is not None:
        _emit(args, str(result.path), {"path": str(result.path), "format": result.format, "sha256": result.sha256,
                                       "size": result.size})
    else:
        text = result.data.decode("utf-8")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace, store: Any) -> int:
    from geoapp.cases.bundle import import_bundle

    result = import_bundle(store, args.bundle, actor=args.actor, as_new=args.new_id)
    if not args.json:
        _info(f"imported {_t(result.title)!r}: {result.evidence} evidence, {result.analyses} analyses "
              f"(bundle sha256 {result.bundle_sha256[:16]}…)")
    _emit(args, result.case_id, {"id": result.case_id, "origin_id": result.origin_id, "title": result.title,
                                 "bundle_sha256": result.bundle_sha256, "evidence": result.evidence,
                                 "analyses": result.analyses})
    return EXIT_OK
