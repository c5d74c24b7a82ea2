"""report.html of one run: header, verdicts, timeline figure, teardown pools, steps.

Self-contained: inline CSS, the figure as inline SVG, links only to files beside it.
"""

from html import escape
from pathlib import Path
from typing import Any

from .data import RunData

VERDICT_COLORS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "STALL": "#cf222e", "LEAK": "#cf222e",
                  "INCONCLUSIVE": "#9a6700", "ERROR": "#8250df", "BAD-INPUT": "#57606a"}

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1200px; padding: 0 1em; color: #1f2328; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.6em 0 .4em;
     border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
.badge { display: inline-block; padding: .05em .5em; border-radius: .3em; color: #fff;
         font-weight: 600; font-size: .9em; vertical-align: middle; }
.diag { font-size: 1.05em; margin: .3em 0 1em; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { text-align: left; padding: .2em .7em .2em 0; vertical-align: top;
         border-bottom: 1px solid #eaeef2; }
th { font-weight: 600; color: #57606a; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { white-space: nowrap; }
tr.bad td { background: #ffebe9; }
.files a { margin-right: 1em; white-space: nowrap; }
.note { color: #57606a; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: 12px; }
figure { margin: .5em 0; } figure svg { width: 100%; height: auto; }
.legend span { margin-right: 1.2em; white-space: nowrap; }
.swatch { display: inline-block; width: 1.6em; height: .8em; vertical-align: middle;
          margin-right: .3em; }
"""


def badge(verdict: str) -> str:
    color = VERDICT_COLORS.get(verdict, "#57606a")
    return f'<span class="badge" style="background:{color}">{escape(verdict)}</span>'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _files(run_dir: Path) -> str:
    """Links to what the run left: top-level files first, then each VM's."""
    found = sorted((p for p in run_dir.glob("*") if p.is_file()), key=lambda p: p.name)
    found += sorted((p for p in run_dir.glob("*/*") if p.is_file()),
                    key=lambda p: (p.parent.name, p.name))
    links = [f'<a href="{escape(p.relative_to(run_dir).as_posix())}">'
             f"{escape(p.relative_to(run_dir).as_posix())}</a>"
             for p in found if p.name != "report.html" and not p.name.endswith(".tmp")]
    return f'<p class="files">{" ".join(links) or "(no files)"}</p>'


def _header(d: RunData) -> str:
    r = d.report
    accel = escape(r.get("accelerator") or "?")
    if r.get("accelerator_reason"):
        accel += f' <span class="note">({escape(r["accelerator_reason"])})</span>'
    boot = ", ".join(f"{escape(vm)} {s:.1f}s" for vm, s in (r.get("boot_seconds") or {}).items())
    kernel = escape(r.get("kernel_release") or "?") + "".join(
        f'<br><span class="note">no {escape(lost)}</span>' for lost in r.get("kernel_lost", []))
    rows = [("accelerator", accel), ("kernel", kernel),
            ("duration", f"{r.get('duration_s', 0):.1f} s"), ("boot to SSH", boot or "-"),
            ("scenario file", escape(r.get("source", "")))]
    if d.dut_nic:
        rows.append(("DUT NIC", escape(d.dut_nic)))
    if d.samples:
        rows.append(("samples", f"{d.samples} guest, {d.device_samples} device, every "
                                f"{d.interval}s"))
    meta = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (f"<h1>{escape(r.get('scenario', '?'))} {badge(r.get('verdict', '?'))}</h1>\n"
            f'<p class="diag">{escape(r.get("diagnosis", ""))}</p>\n'
            f"<table>{meta}</table>\n{_files(d.run_dir)}")


def _verdict_details(v: dict[str, Any], d: RunData) -> str:
    if v["name"] == "rx-stall" and v.get("queue") is not None:
        return (f"queue {v['queue']} ({escape(str(v.get('buffer_queue')))}), stalled "
                f"{v.get('stalled_for', 0):.1f}s past the pressure (threshold "
                f"{v.get('threshold')}s); stalled queues {v.get('stalled_queues')}; "
                f"{len(v.get('evidence') or [])} evidence samples, hatched on the timeline")
    if v["name"] == "teardown":
        return f"{v.get('events', 0)} events, {v.get('pools_checked', 0)} pools checked, " \
               f"grace {v.get('grace')}s"
    if v["name"] == "dma":
        return f"DMA-API errors before/after {v.get('dma_api_errors')}, device DMA errors " \
               f"{v.get('device_dma_errors')}"
    return ""


def _verdicts(d: RunData) -> str:
    vs = d.report.get("verdicts") or []
    if not vs:
        return "<h2>Verdicts</h2><p class=\"note\">no verdict was judged (the run did not " \
               "get that far, or the scenario asks for none)</p>"
    rows = "".join(
        f'<tr id="verdict-{escape(v["name"])}"><td>{escape(v["name"])}</td>'
        f"<td>{badge(v['verdict'])}</td><td>{escape(v.get('reason', ''))}"
        f'<br><span class="note">{_verdict_details(v, d)}</span></td></tr>' for v in vs)
    leaked = (d.verdict("teardown") or {}).get("leaked") or []
    leak_table = ""
    if leaked:
        leak_rows = "".join(
            f'<tr class="bad"><td class="num">{p["id"]}</td><td>{escape(str(p["event"]))}</td>'
            f'<td class="num">{p.get("event_time")}</td><td class="num">{p.get("inflight")}</td>'
            f"<td>{'yes' if p.get('destroyed') else 'no'}</td>"
            f"<td>{p.get('drained_after') if p.get('drained_after') is not None else 'never'}"
            f"</td></tr>" for p in leaked)
        leak_table = ("<h3>Leaked page_pools</h3><table><tr><th>pool</th><th>event</th>"
                      "<th>event t</th><th>inflight</th><th>destroyed</th>"
                      f"<th>drained after (s)</th></tr>{leak_rows}</table>")
    return (f"<h2>Verdicts</h2><table><tr><th>check</th><th>verdict</th><th>reason</th></tr>"
            f"{rows}</table>{leak_table}")


def _legend(d: RunData) -> str:
    items = []
    if d.pressure:
        items.append('<span><span class="swatch" style="background:#ff990060"></span>'
                     "memory pressure</span>")
    if d.stall:
        items.append('<span><span class="swatch" style="background:#d6272822;'
                     'border:1px solid #d62728"></span>rx stall: evidence window (hatched), '
                     "time counted against the driver (solid)</span>")
    if d.events:
        items.append('<span><span class="swatch" style="border-left:2px dashed #444;'
                     'height:1em;width:0"></span>teardown event</span>')
    if d.sinks_closed_at is not None:
        items.append('<span><span class="swatch" style="border-left:2px dotted #888;'
                     'height:1em;width:0"></span>unread sinks closed</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def _timeline(d: RunData, svg: str | None) -> str:
    out = "<h2>Timeline</h2>"
    if svg is None:
        return out + ('<p class="note">no watchdog samples (watch.jsonl missing or empty): '
                      "the run did not get as far as sampling, or the scenario judges "
                      "nothing</p>")
    if not d.has_device:
        out += (f'<p class="note">device series (drops, buffers owned) not available for '
                f"the {escape(d.dut_nic or 'DUT')} NIC model: only bqnic reports them. "
                f"Guest-side series only.</p>")
    return out + _legend(d) + f'<figure id="timeline">{svg}</figure>'


def _pool_table(d: RunData) -> str:
    if not d.events:
        return ""
    ev_rows = "".join(
        f"<tr><td class=\"num\">{i}</td><td>{escape(e['what'])}</td>"
        f"<td class=\"num\">{e['start']:.2f}</td><td class=\"num\">{e['end']:.2f}</td>"
        f"<td>{', '.join(str(p['id']) for p in e.get('pools', [])) or '-'}</td></tr>"
        for i, e in enumerate(d.events))
    pool_rows = "".join(
        f'<tr{" class=bad" if r.leaked else ""}><td class="num">{r.event}</td>'
        f"<td>{escape(r.what)}</td><td class=\"num\">{r.t:.2f}</td><td class=\"num\">{r.pool}"
        f"</td><td class=\"num\">{r.before}</td><td>{escape(r.after)}</td>"
        f"<td>{escape(r.at_deadline)}{' LEAK' if r.leaked else ''}</td></tr>"
        for r in d.pool_rows)
    opened = " open" if len(d.events) <= 12 else ""
    return (f"<h2>Teardown events</h2><details{opened}><summary>{len(d.events)} event(s)"
            f"</summary><table><tr><th>#</th><th>what</th><th>start</th><th>end</th>"
            f"<th>pools before</th></tr>{ev_rows}</table></details>"
            f"<h3>page_pool inflight after each event</h3><details{opened}><summary>"
            f"{len(d.pool_rows)} pool(s): inflight just before, on the first sample after the "
            f"event, and at the deadline (grace after the event or the sinks' close)"
            f"</summary><table><tr><th>#</th><th>event</th><th>t</th><th>pool</th>"
            f"<th>before</th><th>after</th><th>at deadline</th></tr>{pool_rows}</table>"
            f"</details>")


def _steps(d: RunData) -> str:
    steps = d.report.get("steps") or []
    if not steps:
        return ""
    # When each step started, on the timeline's clock (runs with a watchdog only).
    spans = {s["index"]: s for s in (d.report.get("timeline") or {}).get("steps", [])}

    def at(i: int) -> str:
        t = spans.get(i, {}).get("start")
        return f'<td class="num">{"-" if t is None else f"{t:.2f}"}</td>' if spans else ""

    rows = "".join(
        f'<tr{"" if s.get("ok") else " class=bad"}><td class="num">{s["index"]}</td>'
        f"<td>{escape(s['kind'])}</td>{at(s['index'])}"
        f"<td class=\"num\">{s.get('seconds', 0):.1f}</td>"
        f"<td>{'ok' if s.get('ok') else 'FAIL'}</td><td>{escape(s.get('summary', ''))}</td>"
        f"</tr>" for s in steps)
    return (f"<h2>Steps</h2><table><tr><th>#</th><th>step</th>"
            f"{'<th>at (s)</th>' if spans else ''}<th>took (s)</th>"
            f"<th></th><th>summary</th></tr>{rows}</table>")


def _problems(d: RunData) -> str:
    out = ""
    r = d.report
    if r.get("error"):
        out += f"<h2>Error</h2><pre>{escape(r['error'])}</pre>"
    for vm, fs in (r.get("console_findings") or {}).items():
        for f in fs:
            out += (f"<h2>Kernel report on {escape(vm)}: {escape(f.get('kind', ''))} "
                    f"(console line {f.get('line')})</h2><pre>{escape(f.get('excerpt', ''))}"
                    f"</pre>")
    if d.watch_errors:
        out += "<h2>Watchdog errors</h2><pre>" + escape("\n".join(d.watch_errors[:50])) + \
            "</pre>"
    return out


def render(d: RunData, svg: str | None) -> str:
    body = "\n".join([_header(d), _problems(d), _verdicts(d), _timeline(d, svg), _pool_table(d),
                      _steps(d)])
    r = d.report
    return page(f"{r.get('verdict', '?')} {r.get('scenario', '?')} - bqlab", body)
