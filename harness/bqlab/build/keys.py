"""`bqlab build --keys`: the artifacts' cache keys, computed without building or downloading.

A CI system keys its own cache on these (restore `~/.cache/bqlab` when they match). They
are the keys the builds use (qemu.artifact(), kernel.artifact(spec), image.image_artifact).
Debian's linux-source .deb enters the kernel key by its version; before the .deb is in the
download cache (a CI job before its cache is restored) that is apt's candidate, the one
`apt-get download` would fetch, so the key is the one the build computes after fetching.
"""

from . import image, kernel, qemu

NAMES = ("qemu", "kernel", "image")


def artifact_keys(spec: kernel.KernelSpec, what: str = "all") -> dict[str, str]:
    """{artifact name: input key} for `what` (all, qemu, kernel, image)."""
    names = NAMES if what == "all" else (what,)
    keys: dict[str, str] = {}
    if "qemu" in names:
        keys["qemu"] = qemu.artifact().key
    if "kernel" in names or "image" in names:
        k = kernel.artifact(spec, fetch=False)
        if "kernel" in names:
            keys["kernel"] = k.key
        if "image" in names:
            # The image key takes the kernel artifact's key (its directory's name), not its
            # contents: computable before the kernel is built.
            keys["image"] = image.image_artifact(k.path).key
    return keys
