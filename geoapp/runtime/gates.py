"""The int8 quality gate: an int8 tower runs only where it was measured against fp32 on data with answers.

A gate is run by ``python -m geoapp runtime gate --model KEY --precision int8 --runtime ENGINE`` (the measuring
code is in ``training/runtime_gate.py``: SatWorld's held-out split, the map-tile demo's held-out locations, or a
labelled dataset the user names for GeoCLIP with real weights). It quantises the tower, measures accuracy at
200 / 750 / 2500 km with torch fp32 and with the int8 engine on the same images, and stores a
:class:`GateResult` per (tower digest, engine, machine). ``--precision int8`` looks that verdict up: no verdict, a
failed one or a changed int8 file refuse to run, with the reason and the command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from geoapp.runtime.engines import TowerSource
from geoapp.runtime.request import GATE_COMMAND, RuntimeUnavailableError
from geoapp.runtime.store import file_sha256, machine, read_verdict, verdict_path, write_json

GATE_THRESHOLDS_KM = (200, 750, 2500)
MAX_DROP_POINTS = 1.0  # int8 accuracy may be at most this many points below fp32 at every threshold


@dataclass
class GateResult:
    family: str
    digest: str  # the fp32 tower's digest
    engine: str  # onnx | openvino
    passed: bool
    dataset: str  # what it was measured on
    images: int
    fp32_accuracy: dict[str, float]  # threshold km (str) -> % within it
    int8_accuracy: dict[str, float]
    int8_file: str
    int8_sha256: str
    calibration: str  # the calibration images
    command: str  # how to run it again
    int8_ms: float = 0.0  # median batch-1 forward of the int8 tower when the gate ran (--runtime auto compares it)
    torch_ms: float = 0.0  # the same for torch fp32
    checked_at: str = ""
    random_weights: bool = False
    machine: dict = field(default_factory=dict)

    @property
    def drops(self) -> dict[str, float]:
        return {k: round(self.fp32_accuracy[k] - self.int8_accuracy.get(k, 0.0), 3) for k in self.fp32_accuracy}

    def reason(self) -> str:
        worst = max(self.drops.items(), key=lambda kv: kv[1])
        return (f"on {self.dataset} ({self.images} images) int8 accuracy is at most {worst[1]:.2f} points below fp32 "
                f"(at {worst[0]} km; allowed {MAX_DROP_POINTS:g})")

    def to_dict(self) -> dict:
        return asdict(self)


def judge(fp32: dict[str, float], int8: dict[str, float]) -> bool:
    """Passed when int8 is within :data:`MAX_DROP_POINTS` of fp32 at every gate threshold."""
    return all(int8[str(t)] >= fp32[str(t)] - MAX_DROP_POINTS for t in GATE_THRESHOLDS_KM)


def gate_path(source: TowerSource, engine: str) -> Path:
    return verdict_path("gates", source.family, source.digest, engine, "int8")


def store_gate(result: GateResult) -> Path:
    return write_json(verdict_path("gates", result.family, result.digest, result.engine, "int8"), result.to_dict())


def stored_gate(source: TowerSource, engine: str) -> GateResult | None:
    return read_verdict(gate_path(source, engine), source.digest, GateResult)


def require_gate(source: TowerSource, engine: str) -> GateResult:
    """The passed gate of ``source`` on ``engine`` (its int8 file checked), or :class:`RuntimeUnavailableError` saying why not."""
    command = GATE_COMMAND.format(family=source.family, runtime=engine)
    result = stored_gate(source, engine)
    if result is None:
        raise RuntimeUnavailableError(
            f"--precision int8 is refused for {source.family} with --runtime {engine}: its int8 quality gate has not "
            f"been run on this machine for these weights. Run `{command}` (compares int8 with fp32 accuracy at "
            f"{'/'.join(map(str, GATE_THRESHOLDS_KM))} km on held-out data with known answers), or drop --precision int8.")
    if not result.passed:
        raise RuntimeUnavailableError(
            f"--precision int8 is refused for {source.family} with --runtime {engine}: its int8 quality gate failed "
            f"on this machine ({result.reason()}). Use fp32 (drop --precision int8); `{command}` measures it again.")
    path = Path(result.int8_file)
    if not path.is_file() or file_sha256(path) != result.int8_sha256:
        raise RuntimeUnavailableError(
            f"--precision int8 is refused for {source.family}: the int8 model its gate measured ({path}) is missing "
            f"or was changed. Run `{command}` again.")
    return result


def run_gate(source: TowerSource, engine: str, evaluate, calibration, *, dataset: str, images: int, command: str,
             random_weights: bool = False, fp32_accuracy: dict[str, float] | None = None, log=print) -> GateResult:
    """Quantise ``source`` for ``engine``, measure it and store the verdict.

    ``evaluate(tower) -> {threshold km (str): accuracy %}`` scores a tower on the gate's data (the same images
    for both); ``calibration``: an ImageSet (:mod:`.images`) of images *not* in that data. ``fp32_accuracy``:
    torch's result when already measured (several engines share it)."""
    import time

    from geoapp.runtime.engines import TorchTower, open_engine
    from geoapp.runtime.export import ensure_fp32, int8_path
    from geoapp.runtime.parity import median_ms
    from geoapp.runtime.quantize import quantize_int8

    path, settings, seconds = quantize_int8(ensure_fp32(source), int8_path(source, engine), calibration.pixels)
    log(f"{source.family}: int8 model for {engine} written in {seconds:.0f} s ({path.stat().st_size / 1e6:.0f} MB; "
        f"{settings.to_dict()})")
    reference = TorchTower(source)
    tower = open_engine(engine, source, path, "int8")
    fp32 = fp32_accuracy if fp32_accuracy is not None else evaluate(reference)
    int8 = evaluate(tower)
    one = calibration.pixels[:1]
    result = GateResult(
        family=source.family, digest=source.digest, engine=engine, passed=judge(fp32, int8), dataset=dataset,
        images=images, fp32_accuracy=fp32, int8_accuracy=int8,
        int8_file=str(path), int8_sha256=file_sha256(path), calibration=calibration.description, command=command,
        int8_ms=median_ms(tower, one), torch_ms=median_ms(reference, one),
        checked_at=time.strftime("%Y-%m-%dT%H:%M:%S"), random_weights=random_weights, machine=machine())
    store_gate(result)
    return result
