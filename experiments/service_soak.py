#!/usr/bin/env python3
"""Helpers of experiments/service-soak.sh (standard library only).

  manifest QUERIES TRACKS OUT      the query recordings with their true answer ("title — artist",
                                   what `identify` prints), one TSV row each
  capture UPSTREAM OUT             a one-shot recording proxy: prints its port, relays GET /models
                                   and one POST to UPSTREAM, saving the POST body (a real encrypted
                                   query) to OUT, then exits
  bodies QUERY DIR                 the malformed bodies derived from a real query (truncated,
                                   trailing byte, other wire version, other parameter set,
                                   other model id, garbage, oversized, bad JSON)
  svg RSS_CSV OUT WARMUP           the RSS plot as SVG, when neither gnuplot nor matplotlib is there
  matplotlib RSS_CSV OUT WARMUP    the RSS plot as PNG with matplotlib
  report WORK OUT ...              summary.md from the soak's raw files; exits 1 if a check failed
"""

from __future__ import annotations

import argparse
import csv
import http.server
import os
import re
import statistics
import sys
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path


def manifest(args: argparse.Namespace) -> None:
    tracks = {}
    with open(args.tracks, newline="") as f:
        for row in csv.DictReader(f):
            title, artist = row.get("title") or "", row.get("artist") or ""
            name = f"{title} — {artist}" if title and artist else title or row["track_id"]
            tracks[int(row["track_id"])] = name
    root = Path(args.queries).parent
    rows = []
    with open(args.queries, newline="") as f:
        for row in csv.DictReader(f):
            if args.conditions and row["condition"] not in args.conditions.split(","):
                continue
            rows.append((str(root / row["file"]), row["track_id"], row["condition"],
                         tracks[int(row["track_id"])]))
    with open(args.out, "w") as out:
        for file, track, condition, expected in rows:
            out.write(f"{file}\t{track}\t{condition}\t{expected}\n")
    print(len(rows))


def capture(args: argparse.Namespace) -> None:
    upstream, out = args.upstream.rstrip("/"), args.out

    class Relay(http.server.BaseHTTPRequestHandler):
        def relay(self, body: bytes | None = None) -> None:
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command)
            if body is not None:
                req.add_header("Content-Type", "application/octet-stream")
            with urllib.request.urlopen(req, timeout=60) as r:
                data = r.read()
                self.send_response(r.status)
                self.send_header("Content-Type", r.headers.get("Content-Type", ""))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.relay()

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            Path(out).write_bytes(body)
            self.relay(body)
            self.server.done = True  # type: ignore[attr-defined]

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Relay)
    server.timeout = 60
    server.done = False  # type: ignore[attr-defined]
    print(server.server_address[1], flush=True)
    for _ in range(4):  # GET /models, POST …/score (and room for a retry)
        server.handle_request()
        if server.done:  # type: ignore[attr-defined]
            return
    sys.exit("capture proxy: no query was posted")


def bodies(args: argparse.Namespace) -> None:
    good = Path(args.query).read_bytes()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    assert good[:4] == b"FSHQ", "the captured body is not an encrypted query"
    version, params = bytearray(good), bytearray(good)
    version[4:6] = (9).to_bytes(2, "little")
    params[6:8] = (2).to_bytes(2, "little")
    model = bytearray(good)
    # The model id follows magic, version, parameter set id, five u32 sizes and p
    # (tests/bad_inputs.rs flips the same bytes).
    for i in range(29, 37):
        model[i] ^= 0x5A
    rnd = os.urandom(len(good))
    files = {
        "good.bin": good,
        "truncated-half.bin": good[: len(good) // 2],
        "truncated-last-byte.bin": good[:-1],
        "header-only.bin": good[:64],
        "trailing-byte.bin": good + b"\0",
        "other-version.bin": bytes(version),
        "other-params.bin": bytes(params),
        "other-model-id.bin": bytes(model),
        "garbage.bin": rnd,
        "garbage-magic.bin": b"FSHQ" + rnd[4:],
        "oversized.bin": os.urandom(args.limit + 1),
        "huge.bin": bytes(4 * 1024 * 1024),
        "bad.json": b'{"query": [1, 2, 3',
        "valid.json": b'{"query": "FSHQ", "model": "q8"}',
    }
    for name, data in files.items():
        (d / name).write_bytes(data)


def read_rss(path: str) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if k != "round"} | {"round": row["round"]}
                for row in csv.DictReader(f)]


def svg(args: argparse.Namespace) -> None:
    rows = read_rss(args.rss)
    xs = [r["completed"] for r in rows]
    ys = [r["rss_kib"] / 1024 for r in rows]
    w, h, ml, mr, mt, mb = 800, 450, 70, 20, 40, 50
    xmax = max(xs + [1.0])
    ymax = max(ys + [1.0]) * 1.15
    px = lambda x: ml + (w - ml - mr) * x / xmax  # noqa: E731
    py = lambda y: h - mb - (h - mt - mb) * y / ymax  # noqa: E731
    pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle">server RSS against completed identifications</text>',
           f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="black"/>',
           f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="black"/>']
    for i in range(6):
        y = ymax * i / 5
        out.append(f'<text x="{ml - 5}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.0f}</text>')
        x = xmax * i / 5
        out.append(f'<text x="{px(x):.1f}" y="{h - mb + 15}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">completed identifications</text>')
    out.append(f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" text-anchor="middle">RSS (MiB)</text>')
    out.append(f'<line x1="{px(args.warmup):.1f}" y1="{mt}" x2="{px(args.warmup):.1f}" y2="{h - mb}" stroke="gray" stroke-dasharray="4"/>')
    out.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>')
    out.append("</svg>")
    Path(args.out).write_text("\n".join(out) + "\n")


def plot_matplotlib(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rss(args.rss)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([r["completed"] for r in rows], [r["rss_kib"] / 1024 for r in rows], lw=1.2)
    ax.axvline(args.warmup, color="gray", ls="--", label="end of warm-up")
    ax.set_xlabel("completed identifications")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def report(args: argparse.Namespace) -> None:
    work = Path(args.work)
    p = {k: v for k, v in (line.split("=", 1) for line in args.param)}
    total_planned = int(p["clients"]) * int(p["queries"])
    # Honest identifications.
    results = []
    for f in sorted((work / "results").glob("*.tsv")):
        with open(f, newline="") as fh:
            for row in csv.reader(fh, delimiter="\t"):
                results.append(dict(zip(
                    ["client", "seq", "round", "file", "condition", "expected", "answer",
                     "outcome", "attempts", "exit", "ms", "error"], row)))
    outcomes = Counter(r["outcome"] for r in results)
    retried = sum(int(r["attempts"]) - 1 for r in results)
    retried_queries = sum(1 for r in results if int(r["attempts"]) > 1)
    ms_ok = [float(r["ms"]) for r in results if r["outcome"] == "correct"]
    by_round: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_round[r["round"]][r["outcome"]] += 1
        by_round[r["round"]]["retries"] += int(r["attempts"]) - 1
    # Malformed requests.
    with open(work / "malformed.csv", newline="") as fh:
        malformed = list(csv.DictReader(fh))
    # RSS.
    rss = read_rss(str(work / "rss.csv"))
    warm_n = int(p["warmup_ids"])
    warm = next((r for r in rss if r["completed"] >= warm_n), rss[-1] if rss else None)
    after = [r for r in rss if warm is not None and r["elapsed_s"] >= warm["elapsed_s"]]
    end = rss[-1] if rss else None
    # The first sample once every identification had completed (before the slow-upload probe).
    ids_end = next((r for r in rss if r["completed"] >= total_planned), end)
    kib = lambda v: v / 1024  # noqa: E731  (KiB → MiB)
    tol_pct, tol_mib = float(p["rss_tol_pct"]), float(p["rss_tol_mib"])
    growth = ids_growth = peak_growth = slope = float("nan")
    flat = False
    if warm and end and ids_end:
        growth = kib(end["rss_kib"] - warm["rss_kib"])
        ids_growth = kib(ids_end["rss_kib"] - warm["rss_kib"])
        peak_growth = kib(max(r["rss_kib"] for r in after) - warm["rss_kib"])
        tol = max(tol_mib, kib(warm["rss_kib"]) * tol_pct / 100)
        flat = growth <= tol and ids_growth <= tol
        # Least-squares slope of RSS against completed identifications, after warm-up and
        # while identifications were still completing (MiB per 1000 identifications).
        pts = [(r["completed"], kib(r["rss_kib"])) for r in after if r["completed"] < total_planned]
        if len(pts) >= 3 and len({x for x, _ in pts}) > 1:
            mx = statistics.fmean(x for x, _ in pts)
            my = statistics.fmean(y for _, y in pts)
            sxx = sum((x - mx) ** 2 for x, _ in pts)
            slope = 1000 * sum((x - mx) * (y - my) for x, y in pts) / sxx
    # Server log.
    log = (work / "server.log").read_text(errors="replace")
    status_tally = Counter(re.findall(r"status=(\d+)", log))
    panics = [l for l in log.splitlines() if "panick" in l or " ERROR " in l]
    bad_5xx_log = {s: n for s, n in status_tally.items() if s.startswith("5") and s != "503"}

    mal_bad = [m for m in malformed if m["verdict"] not in ("expected", "overload", "closed")]
    closed = [m for m in malformed if m["verdict"] == "closed"]
    # Gaps in the once-a-second sampling: the whole machine stalled (nothing in the soak blocks
    # the sampler).
    gaps = [(a["elapsed_s"], b["elapsed_s"] - a["elapsed_s"]) for a, b in zip(rss, rss[1:])
            if b["elapsed_s"] - a["elapsed_s"] > 5]
    slow_ids = [r for r in results if float(r["ms"]) > 10_000]
    mal_5xx = [m for m in malformed if m["status"].startswith("5")
               and not (m["status"] == "503" and m["retry_after"])]
    alive = [m for m in malformed if m["kind"] == "health after the burst"]
    alive_bad = [m for m in alive if m["status"] != "200"]
    shutdown_rc = p.get("shutdown_rc", "?")
    checks = [
        ("every planned identification was attempted",
         len(results) == total_planned, f"{len(results)} of {total_planned}"),
        ("0 failed honest identifications", outcomes["failed"] == 0, f"{outcomes['failed']} failed"),
        ("0 wrong answers", outcomes["wrong"] == 0, f"{outcomes['wrong']} wrong"),
        ("0 'unknown' answers", outcomes["unknown"] == 0, f"{outcomes['unknown']} unknown"),
        ("malformed requests: never a 5xx other than 503 with Retry-After",
         not mal_5xx and not bad_5xx_log,
         f"{len(mal_5xx)} in replies; log 5xx other than 503: {bad_5xx_log or 'none'}"),
        ("malformed requests: each answered with its expected status (or 503 + Retry-After; "
         "or closed, for the 4 MiB body)",
         not mal_bad, f"{len(malformed) - len(mal_bad)} of {len(malformed)}"),
        ("server up after every burst (GET /health = 200, process alive)",
         not alive_bad and p.get("server_alive") == "yes", f"{len(alive) - len(alive_bad)} of {len(alive)} health checks"),
        ("no panic or ERROR line in the server log", not panics, f"{len(panics)} lines"),
        (f"RSS flat after warm-up (end − warm-up ≤ max({tol_mib:g} MiB, {tol_pct:g} % of the warm-up RSS), "
         "at the last identification and at the end)",
         flat, f"{ids_growth:+.1f} MiB and {growth:+.1f} MiB (max − warm-up {peak_growth:+.1f} MiB)"),
        ("clean shutdown on SIGINT (exit 0)", shutdown_rc == "0",
         f"exit {shutdown_rc} after {p.get('shutdown_ms', '?')} ms"),
    ]
    ok = all(c[1] for c in checks)

    L: list[str] = []
    w = L.append
    w(f"# Service soak: {p['clients']} clients × {p['queries']} encrypted identifications, malformed bursts, server RSS")
    w("")
    w(f"`experiments/service-soak.sh` started `fhe-shazam serve` on loopback, ran {p['clients']} concurrent "
      f"clients × {p['queries']} identifications each (`fhe-shazam identify`, one process per identification, "
      f"one key folder per client) in {p['rounds']} rounds, sent bursts of malformed requests with curl before, "
      "during and between the rounds, and sampled the server's resident memory (VmRSS from "
      "/proc/PID/status) every second. Every answer is compared with the recording's true song "
      "(the dataset's tracks.csv), not with what the server says.")
    w("")
    w(f"**Verdict: {'all checks passed' if ok else 'SOME CHECKS FAILED'}**; RSS after warm-up: "
      f"**{'flat' if flat else 'NOT flat'}**.")
    w("")
    w("| check | result | figure |")
    w("|---|---|---|")
    for name, good, fig in checks:
        w(f"| {name} | {'pass' if good else '**FAIL**'} | {fig} |")
    w("")
    w("## Honest identifications")
    w("")
    w("| attempted | correct | wrong | unknown | failed | 503 answers retried (queries) |")
    w("|---|---|---|---|---|---|")
    w(f"| {len(results)} | {outcomes['correct']} | {outcomes['wrong']} | {outcomes['unknown']} | "
      f"{outcomes['failed']} | {retried} ({retried_queries}) |")
    w("")
    w(f"A 503 (all {p['max_jobs']} scoring slots busy) is the server's documented back-pressure: the soak's "
      f"client waits the `Retry-After` it names and tries again, at most {p['retries']} times; only a query "
      "that still has no answer then counts as failed. `fhe-shazam identify` itself does not retry "
      "(see Findings). Identification wall time per `identify` process (correct answers; process start, "
      "GET /models, key load, features, encryption, round trip, decryption, and any 503 wait): "
      f"median {pct(ms_ok, 0.5):.0f} ms, p95 {pct(ms_ok, 0.95):.0f} ms, max {max(ms_ok, default=float('nan')):.0f} ms. "
      f"Rounds took {p['rounds_s']} s in all: {len(results) / max(float(p['rounds_s']), 1e-9):.1f} identifications/s.")
    w("")
    w("| round | correct | wrong | unknown | failed | 503 retried | server RSS at its end (MiB) |")
    w("|---|---|---|---|---|---|---|")
    round_end = {}
    for r in rss:
        round_end[r["round"]] = r["rss_kib"]
    for rnd in sorted(by_round, key=int):
        c = by_round[rnd]
        w(f"| {rnd} | {c['correct']} | {c['wrong']} | {c['unknown']} | {c['failed']} | {c['retries']} | "
          f"{kib(round_end.get(rnd, float('nan'))):.1f} |")
    if gaps or slow_ids:
        w("")
        w(f"{len(slow_ids)} identifications took more than 10 s. "
          + (" ".join(f"From {t:.0f} s the RSS sampler (a shell loop that sleeps 1 s, blocked by nothing in "
                      f"the soak) took no sample for {g:.0f} s, the server logged nothing and no client "
                      "finished a query: the whole machine stalled." for t, g in gaps)
             if gaps else ""))
    bad = [r for r in results if r["outcome"] != "correct"]
    if bad:
        w("")
        w("Not correct (client, query, file, expected → answer, exit, error):")
        w("")
        for r in bad[:50]:
            w(f"- client {r['client']} #{r['seq']} `{r['file']}`: {r['expected']} → {r['answer'] or '(none)'}, "
              f"exit {r['exit']}, {r['error'] or '-'}")
        if len(bad) > 50:
            w(f"- … and {len(bad) - 50} more (identifications.tsv)")
    w("")
    w("## Malformed requests")
    w("")
    w(f"{len(malformed)} requests (`malformed.csv`: round, phase, kind, method, path, content type, body "
      "bytes, expected status, status, Retry-After, verdict, the reply's first bytes). Phase `before`/`between`/"
      "`after`: the server otherwise idle; `during`: sent while the clients were identifying (a 503 with "
      "Retry-After is then accepted for requests that need a scoring slot). `-` as status: no answer was "
      "read — by design for the hang-up kind; for the 4 MiB body, `closed` (see Findings).")
    w("")
    w("| kind | request | expected | statuses seen (count) | verdict |")
    w("|---|---|---|---|---|")
    kinds: dict[str, list[dict[str, str]]] = defaultdict(list)
    for m in malformed:
        kinds[m["kind"]].append(m)
    for kind, ms in kinds.items():
        seen = Counter(m["status"] + (" + Retry-After" if m["retry_after"] else "") for m in ms)
        verdicts = Counter(m["verdict"] for m in ms)
        vtext = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items()))
        req = f"{ms[0]['method']} {ms[0]['path']}" + (f" ({ms[0]['content_type']})" if ms[0]["content_type"] else "") \
            + (f", {ms[0]['body_bytes']} B" if ms[0]["body_bytes"] not in ("", "0") else "")
        w(f"| {kind} | `{req}` | {ms[0]['expected']} | {', '.join(f'{s} ({n})' for s, n in sorted(seen.items()))} | {vtext} |")
    w("")
    w("Server log, every request by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(status_tally.items())) + ".")
    w("")
    w("## Server memory")
    w("")
    if warm and end:
        maxr = max(rss, key=lambda r: r["rss_kib"])
        w("| | elapsed (s) | identifications done | RSS (MiB) |")
        w("|---|---|---|---|")
        w(f"| first sample | {rss[0]['elapsed_s']:.0f} | {rss[0]['completed']:.0f} | {kib(rss[0]['rss_kib']):.1f} |")
        w(f"| warm-up (first {p['warmup_pct']} % of identifications) | {warm['elapsed_s']:.0f} | {warm['completed']:.0f} | {kib(warm['rss_kib']):.1f} |")
        w(f"| max | {maxr['elapsed_s']:.0f} | {maxr['completed']:.0f} | {kib(maxr['rss_kib']):.1f} |")
        w(f"| last identification completed | {ids_end['elapsed_s']:.0f} | {ids_end['completed']:.0f} | {kib(ids_end['rss_kib']):.1f} |")
        w(f"| end (last sample before shutdown, after the slow-upload probe) | {end['elapsed_s']:.0f} | {end['completed']:.0f} | {kib(end['rss_kib']):.1f} |")
        w("")
        w(f"Growth after warm-up: {ids_growth:+.1f} MiB when the last identification completed and "
          f"{growth:+.1f} MiB at the end, against a tolerance of max({tol_mib:g} MiB, "
          f"{tol_pct:g} % of the warm-up RSS) = {max(tol_mib, kib(warm['rss_kib']) * tol_pct / 100):.1f} MiB, "
          f"fixed before the run → **{'flat' if flat else 'not flat'}**; the highest sample after warm-up was "
          f"{peak_growth:+.1f} MiB above the warm-up RSS. "
          f"Least-squares slope after warm-up: {slope:+.2f} MiB per 1000 identifications. "
          f"Peak (VmHWM) at the end: {kib(end['hwm_kib']):.1f} MiB; threads {end['threads']:.0f}, open file "
          f"descriptors {end['fds']:.0f} (first sample: {rss[0]['threads']:.0f} and {rss[0]['fds']:.0f}).")
    w("")
    w(f"![server RSS against completed identifications]({p['plot']})")
    w("")
    w(f"`rss.csv`: one row per second (elapsed s, VmRSS and VmHWM in KiB, threads, open fds, identifications "
      f"completed, round). Plot: {p['plot']} by {p['plotter']}.")
    w("")
    slow = [m for m in malformed if m["phase"] == "slow-probe"]
    w("## Findings")
    w("")
    findings = []
    if slow:
        held = [m for m in slow if m["kind"].startswith("valid query while")]
        findings.append(
            f"**Slow uploads hold every scoring slot for the whole request timeout.** The server takes a "
            f"scoring slot before it reads the body (so that memory stays bounded), and keeps it while the body "
            f"arrives. {p['max_jobs']} connections that send the headers of a query and 100 body bytes, then "
            f"nothing, hold all {p['max_jobs']} slots until the {p['server_timeout']} s request limit ends them "
            f"(each then gets 503 + Retry-After and the connection is closed); meanwhile every honest query gets "
            f"503 (here: {', '.join(m['status'] for m in held) or '-'}). Nothing crashes and memory does not grow, "
            "but a client that can open max_jobs connections keeps the service unavailable. Possible remedies "
            "(not done here: the soak does not change the server): a body read timeout much shorter than the "
            "request limit, or reading (bounded) bodies before taking a slot with a separate cap on bodies "
            "in flight. Probed once after the rounds, so the honest counts above are not affected.")
    findings.append(
        "**`fhe-shazam identify` does not retry a 503.** Under 8 concurrent clients on 2 cores the server "
        f"answered 503 to {retried} of {len(results) + retried} honest scoring requests; the CLI prints the "
        "error (with the Retry-After) and exits 1, so a user would see a failed identification. The soak "
        "retries as the `Retry-After` says (as `net::load` does); a retry in the client itself would make the "
        "CLI's answer reliable under load.")
    if p.get("startup_ms"):
        findings.append(
            f"One `identify` process takes ≈ {p['startup_ms']} ms (one offline query, timed before the soak), "
            "while the steps it reports (features, encrypt, round trip, decrypt) add up to ≈ 15 ms. A perf "
            "profile of one identification puts ≈ 90 % of its CPU time in tfhe-fft's SIMD kernels (`pulp`): "
            "tfhe's `Fft::new` plans with `Method::Measure(10 ms)`, i.e. it times candidate FFT algorithms, "
            "afresh in every process. This bounds the soak's throughput (the clients are CPU-bound on 2 cores), "
            "not the server's; a long-lived client would pay it once.")
    huge = [m for m in malformed if m["kind"].startswith("4 MiB body")]
    if closed:
        findings.append(
            f"**A body far over the limit can lose its 413.** For a body past the drain cap (4× the "
            f"{int(p['max_body']) // 1024} KiB limit) the server answers 413 and closes the connection while "
            f"the client is still sending (documented: `close_connection`); the unread data makes the kernel reset "
            f"the connection, and the client may never read the status. The server logged 413 for each of the "
            f"{len(huge)} 4 MiB requests; curl read it {sum(1 for m in huge if m['status'] == '413')} times and "
            f"{len(closed)} times got only a send failure ({'; '.join(sorted({m['reply'] for m in closed})) or '-'}). "
            "No 5xx, nothing kept, the server stays up; a client sending such a body gets an error either way.")
    if "wrong content type" in " ".join(kinds):
        findings.append("The server does not look at `Content-Type`: a valid query sent as `text/plain` is "
                        "scored (200), and any body is parsed as a wire message (garbage → 400). Documented "
                        "behaviour, recorded for completeness.")
    for f_ in findings:
        w(f"- {f_}")
    w("")
    w("## Parameters")
    w("")
    w("| parameter | value |")
    w("|---|---|")
    for key in ["songs", "song_seconds", "conditions", "recordings", "excluded", "clients", "queries", "rounds",
                "max_jobs", "server_timeout", "max_body", "retries", "query_timeout_s", "client_timeout_s", "soak_timeout_s",
                "warmup_pct", "model", "other_model", "binary"]:
        if key in p:
            w(f"| {key} | {p[key]} |")
    w("")
    w(f"Corpus: `fhe-shazam synth --songs {p['songs']} --seconds {p['song_seconds']}`, `extract`, "
      f"`train --n-bits 6,8 --standardize-inputs` (q8 is the model identified against, q6 is served beside it "
      f"for the \"valid query for another model\" kind), `queries --conditions {p['conditions']}` (15 s "
      "recordings: the seed's first 15 s, and a random start off the 0.5 s grid). Before the soak every "
      "recording was identified offline (`identify --model-file`, the same circuit in one process); "
      f"{p['excluded']} recordings whose offline answer was not the true song were left out. Client c's "
      f"k-th identification uses recording (c·R/{p['clients']} + k) mod R (R = {p['recordings']} recordings), "
      "so the clients are on different recordings at any time.")
    w("")
    w(f"Machine: {p['machine']}, shared with another developer's work (load average {p['load']}); "
      f"commit {p['commit']}, {p['date']}. Wall time of the whole script: {p['wall_s']} s after the release "
      f"build (preparation and offline check {p['prep_s']} s). Latencies and throughput depend on that load; "
      "the counts and statuses do not.")
    w("")
    w(f"Command: `{p['command']}`")
    Path(args.out).write_text("\n".join(L) + "\n")
    print("all checks passed" if ok else "some checks FAILED", file=sys.stderr)
    sys.exit(0 if ok else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("manifest")
    a.add_argument("queries")
    a.add_argument("tracks")
    a.add_argument("out")
    a.add_argument("--conditions", default="")
    a.set_defaults(fn=manifest)
    a = sub.add_parser("capture")
    a.add_argument("upstream")
    a.add_argument("out")
    a.set_defaults(fn=capture)
    a = sub.add_parser("bodies")
    a.add_argument("query")
    a.add_argument("dir")
    a.add_argument("--limit", type=int, default=256 * 1024)
    a.set_defaults(fn=bodies)
    for name, fn in [("svg", svg), ("matplotlib", plot_matplotlib)]:
        a = sub.add_parser(name)
        a.add_argument("rss")
        a.add_argument("out")
        a.add_argument("warmup", type=float)
        a.set_defaults(fn=fn)
    a = sub.add_parser("report")
    a.add_argument("work")
    a.add_argument("out")
    a.add_argument("--param", action="append", default=[], help="KEY=VALUE")
    a.set_defaults(fn=report)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
