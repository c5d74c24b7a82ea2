"""Resolve the three built artifacts a VM needs into file paths."""

from dataclasses import dataclass
from pathlib import Path

from ..errors import InfraError
from . import image, kernel, qemu


@dataclass(frozen=True)
class BuiltArtifacts:
    qemu: Path
    bzimage: Path
    modules: Path
    kernel_tree: Path
    kernel_release: str
    image: Path
    ssh_key: Path
    host_key: Path

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def resolve(spec: "kernel.KernelSpec", build_missing: bool = True) -> BuiltArtifacts:
    """The current artifacts, built first if missing and build_missing is set."""
    if build_missing:
        q = qemu.build()
        k = kernel.build(spec)
        i = image.build(k)
    else:
        q_art, k_art = qemu.artifact(), kernel.artifact(spec)
        missing = [n for n, a in (("qemu", q_art), ("kernel", k_art)) if not a.exists()]
        if not missing:
            i_art = image.image_artifact(k_art.path)
            if not i_art.exists():
                missing.append("image")
        if missing:
            raise InfraError(f"not built yet: {', '.join(missing)}; run `bqlab build`")
        q, k, i = q_art.path, k_art.path, i_art.path
    return BuiltArtifacts(
        qemu=qemu.binary(q), bzimage=k / "bzImage", modules=k / "modules",
        kernel_tree=kernel.source_tree(spec),
        kernel_release=kernel.release(k), image=i / image.IMAGE_NAME,
        ssh_key=i / image.KEY_NAME, host_key=i / "host_key.pub")


def resolve_paths(spec: "kernel.KernelSpec", build_missing: bool = False) -> dict[str, str]:
    return resolve(spec, build_missing).as_dict()
