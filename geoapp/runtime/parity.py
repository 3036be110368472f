"""The parity gate: an exported fp32 tower is used only if its embeddings match torch's.

Cosine similarity between the engine's and torch's embedding of each check image must be at least
:data:`MIN_COSINE` for every image. The verdict (with batch-1 timings of both, which ``--runtime auto`` uses to
pick the fastest engine) is stored per tower digest, engine and machine, so the check runs once.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from geoapp.runtime.engines import ImageTower, TorchTower, TowerSource
from geoapp.runtime.store import machine, read_verdict, verdict_path, write_json

MIN_COSINE = 0.9999
TIMING_RUNS = 3


@dataclass
class ParityResult:
    family: str
    digest: str
    engine: str  # onnx | openvino
    precision: str
    passed: bool
    min_cosine: float
    images: str  # which images were compared
    torch_ms: float  # median batch-1 forward, same images, same process
    engine_ms: float
    checked_at: str = ""
    machine: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return (f"min cosine {self.min_cosine:.6f} {'≥' if self.passed else '<'} {MIN_COSINE} to torch's embeddings "
                f"on {self.images}")

    def to_dict(self) -> dict:
        return asdict(self)


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.double(), b.double(), dim=-1)


def median_ms(tower: ImageTower, pixels: torch.Tensor, runs: int = TIMING_RUNS) -> float:
    tower(pixels)  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        tower(pixels)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def check_parity(source: TowerSource, tower: ImageTower, engine: str, pixels: torch.Tensor, images: str,
                 runs: int = TIMING_RUNS) -> ParityResult:
    """Compare ``tower`` with torch on ``pixels`` (one batch; the exported batch axis is exercised too)."""
    reference = TorchTower(source)
    expected, got = reference(pixels), tower(pixels)
    if got.shape != expected.shape:
        minimum = float("-inf")
    else:
        minimum = float(cosines(expected, got).min())
        minimum = minimum if minimum == minimum else float("-inf")  # NaN from a broken export fails the gate
    one = pixels[:1]
    return ParityResult(family=source.family, digest=source.digest, engine=engine, precision=tower.precision,
                        passed=minimum >= MIN_COSINE, min_cosine=minimum, images=images,
                        torch_ms=median_ms(reference, one, runs), engine_ms=median_ms(tower, one, runs),
                        checked_at=time.strftime("%Y-%m-%dT%H:%M:%S"), machine=machine())


def parity_path(source: TowerSource, engine: str, precision: str = "fp32"):
    return verdict_path("parity", source.family, source.digest, engine, precision)


def stored_parity(source: TowerSource, engine: str) -> ParityResult | None:
    return read_verdict(parity_path(source, engine), source.digest, ParityResult)


def store_parity(result: ParityResult) -> None:
    write_json(verdict_path("parity", result.family, result.digest, result.engine, result.precision),
               result.to_dict())
