"""Find kernel trouble in a console log or dmesg: oopses, BUGs, WARNs, panics, hung tasks,
page_pool shutdown stalls, DMA-API and kmemleak reports."""

import re
from dataclasses import dataclass
from pathlib import Path

# printk prefix: "[   12.345678] " optionally preceded by "<4>" and followed by "[  T123] ".
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[TC]\d+\]\s*)?")

# (kind, pattern). The first pattern that matches a line names its kind.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("oops", re.compile(r"^Oops: |^general protection fault|^BUG: unable to handle"
                        r"|^BUG: kernel NULL pointer dereference")),
    ("soft-lockup", re.compile(r"^watchdog: BUG: soft lockup")),
    # KCSAN's reports (the NIC driver's KCSAN twin): judged by the data-race verdict.
    ("data-race", re.compile(r"^BUG: KCSAN: ")),
    ("bug", re.compile(r"^kernel BUG at |^BUG: ")),
    ("warning", re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ at |possible |suspicious RCU)")),
    ("hung-task", re.compile(r"^INFO: task .+ blocked for more than \d+ seconds")),
    # bqlab asks for this (sysrq w) when a DUT command never completes: where it is stuck.
    ("blocked-tasks", re.compile(r"^sysrq: Show Blocked State")),
    ("rcu-stall", re.compile(r"^rcu: INFO: \w+ (?:self-)?detected stalls?")),
    ("pool-stall", re.compile(r"stalled pool shutdown")),
    # Reports name driver and device ("DMA-API: e1000e 0000:00:02.0: ..."); the boot-time
    # notices ("DMA-API: preallocated 65536 debug entries") do not, and are not trouble.
    ("dma-api", re.compile(r"^DMA-API: \S+ \S+: ")),
    ("kmemleak", re.compile(r"^kmemleak: \d+ new suspected memory leaks")),
]

# An excerpt runs until the report's end marker or this many lines.
EXCERPT_LINES = 40
_END = re.compile(r"---\[ end (?:trace|Kernel panic)")
_RULE = re.compile(r"={60,}")  # KCSAN's (and KASAN's) reports end with one


@dataclass(frozen=True)
class Finding:
    kind: str
    line_no: int  # 1-based line in the log
    line: str
    excerpt: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "line": self.line_no, "text": self.line,
                "excerpt": self.excerpt}


def strip_prefix(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def classify(line: str) -> str | None:
    body = strip_prefix(line)
    for kind, pattern in PATTERNS:
        if pattern.search(body):
            return kind
    return None


def scan(text: str) -> list[Finding]:
    lines = text.splitlines()
    findings: list[Finding] = []
    i = 0
    while i < len(lines):
        kind = classify(lines[i])
        if kind is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and end - i < EXCERPT_LINES:
            if _END.search(lines[end]) or _RULE.fullmatch(strip_prefix(lines[end])):
                end += 1
                break
            # A new report starts: stop this excerpt before it. The "Oops:" line that
            # follows "BUG: unable to handle ..." belongs to the same report.
            nxt = classify(lines[end])
            if nxt is not None and not (nxt == "oops" and kind in ("oops", "bug")):
                break
            end += 1
        findings.append(Finding(kind, i + 1, strip_prefix(lines[i]), "\n".join(lines[i:end])))
        i = end
    return findings


def scan_file(path: Path) -> list[Finding]:
    try:
        return scan(path.read_text(errors="replace"))
    except FileNotFoundError:
        return []
