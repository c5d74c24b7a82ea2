"""Decoding a console report: the faulting frame's file:line out of what
decode_stacktrace.sh printed, and a report kept as it was when nothing can decode it."""

from pathlib import Path

from bqlab.build.kernel import DEBUG_DIR
from bqlab.judge import decode

# What the tree's decode_stacktrace.sh printed for a bqnic oops (6.12, modules with -g)
DECODED = """\
[   12.345678] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   12.345679] RIP: 0010:bqnic_poll (drivers/net/ethernet/bqnic/bqnic_main.c:660) bqnic
[   12.345680] Call Trace:
[   12.345681]  <IRQ>
[   12.345682] ? bqnic_refill_work (drivers/net/ethernet/bqnic/bqnic_main.c:204) bqnic
[   12.345683] __napi_poll+0x2b/0x160
[   12.345684] net_rx_action (dev.c:?)
"""


def test_the_faulting_frame_is_named_by_file_and_line() -> None:
    assert decode.where(DECODED) == "bqnic_poll (drivers/net/ethernet/bqnic/bqnic_main.c:660)"


def test_without_a_placed_rip_the_first_placed_frame_is_named() -> None:
    text = DECODED.replace("RIP: 0010:bqnic_poll (drivers/net/ethernet/bqnic/bqnic_main.c:660)",
                           "RIP: 0010:memcpy_orig+0x10/0x120")
    assert decode.where(text) == \
        "bqnic_refill_work (drivers/net/ethernet/bqnic/bqnic_main.c:204)"


def test_an_inlined_header_line_also_names_the_driver_line() -> None:
    rip = ("RIP: 0010:bqnic_poll (./include/linux/skbuff.h:2485 ./include/linux/skbuff.h:2709 "
           "drivers/net/ethernet/bqnic/bqnic_main.c:604 "
           "drivers/net/ethernet/bqnic/bqnic_main.c:678) bqnic\n")
    assert decode.where(rip) == ("bqnic_poll (include/linux/skbuff.h:2485, inlined in "
                                 "drivers/net/ethernet/bqnic/bqnic_main.c:604)")


def test_unplaced_frames_name_nothing() -> None:
    assert decode.where("RIP: 0010:__napi_poll+0x2b/0x160\n net_rx_action (dev.c:?)\n") \
        is None


def test_a_kernel_built_without_the_material_decodes_nothing(tmp_path: Path) -> None:
    assert decode.decode(DECODED, tmp_path) is None


def fake_kernel(kernel_art: Path, basepath: str, script: str) -> Path:
    """A kernel artifact whose decode_stacktrace.sh is `script`."""
    debug = kernel_art / DEBUG_DIR
    debug.mkdir()
    (debug / "basepath").write_text(basepath + "\n")
    (debug / "decode_stacktrace.sh").write_text(script)
    return debug


def test_a_failing_script_decodes_nothing(tmp_path: Path) -> None:
    fake_kernel(tmp_path, "/nowhere", "echo 'ERROR! vmlinux' >&2; exit 2\n")
    assert decode.decode(DECODED, tmp_path) is None


def test_the_script_gets_vmlinux_basepath_and_modules(tmp_path: Path) -> None:
    debug = fake_kernel(tmp_path, "/tree/src", 'echo "$@"; cat\n')
    got = decode.decode("RIP: 0010:x+0x1/0x2\n", tmp_path)
    assert got is not None
    args, rest = got.text.split("\n", 1)
    assert args.split() == [str(debug / "vmlinux"), "/tree/src", str(debug / "modules")]
    assert rest == "RIP: 0010:x+0x1/0x2\n"
