"""Fuzz: no input makes a service answer 5xx (`make fuzz`).

Starts the four services as real processes (:func:`bench._proof.proof_cluster`, SQLite
by default) and runs three kinds of hostile input against them:

1. **Schemathesis** against every service's OpenAPI document (``/openapi.json``), with
   the check ``not_a_server_error`` and at least ``--cases`` generated cases per
   service (its coverage and fuzzing phases), authenticated as production callers
   are: the service token for the three internal services, a trainer's API token
   (Bearer) for the gateway.
2. **A hostile-upload corpus** posted to the gateway's upload route
   (``POST /api/enhance/train``): not an image, HTML named ``.jpg``, SVG, PDF, a
   truncated JPEG, an empty file, headers claiming huge dimensions, a decompression
   bomb, GIF/BMP/TIFF, over-size files, odd file names, images that must be accepted
   (CMYK, 16-bit, alpha, palette, EXIF rotation).
3. **A mutated-image fuzzer**: ``--mutations`` copies of a valid JPEG and PNG with
   random bytes flipped, inserted, deleted or the file cut short, posted to the same
   route.

Passes with 0 answers ≥ 500 and no traceback in the services' logs (a crash in a
background job answers no request, so the logs are read too). Prints a table and
writes ``bench/results/fuzz-<database>.json``; exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import re
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench._proof import (
    DATABASES,
    ProofCluster,
    ProofError,
    internal_headers,
    machine,
    proof_cluster,
    write_result,
)
from scripts.run import SERVICES
from services.common.testing import make_test_image

UPLOAD = "/api/enhance/train"


# 1. Schemathesis ---------------------------------------------------------------------

def operation_count(url: str) -> int:
    document = httpx.get(url + "/openapi.json", timeout=30).json()
    methods = {"get", "post", "put", "patch", "delete"}
    return sum(1 for item in document["paths"].values() for method in item if method in methods)


def schemathesis_once(service: str, url: str, token: str, per_operation: int, seed: int,
                      report: Path, paths: list[str] | None = None) -> dict[str, Any]:
    """One schemathesis run against one service (``paths`` only, if given); what its
    JSON report says."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", url + "/openapi.json",
               "--checks", "not_a_server_error", "--header", f"Authorization: Bearer {token}",
               "--max-examples", str(per_operation), "--seed", str(seed), "--workers", "2",
               "--phases", "examples,coverage,fuzzing", "--request-timeout", "60",
               "--suppress-health-check", "all", "--report", "json",
               "--report-json-path", str(report),
               *(f"--include-path={path}" for path in paths or [])]
    started = time.monotonic()
    # cwd: schemathesis (Hypothesis) keeps its example database in ./.hypothesis
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          cwd=report.parent)
    took = round(time.monotonic() - started, 1)
    if not report.exists():
        raise ProofError(f"schemathesis wrote no report for {service}:\n{done.stdout[-3000:]}"
                         f"\n{done.stderr[-3000:]}")
    body = json.loads(report.read_text())
    rates = [r for phases in body.get("valid_rates", {}).values() for r in phases.values()]
    return {
        "seed": seed,
        "max_examples_per_operation": per_operation,
        "operations": body["operations"]["tested"],
        "cases": body["test_cases"]["generated"],
        "cases_with_failures": body["test_cases"]["with_failures"],
        "server_errors": len(body["failures"]),
        "errors": len(body["errors"]),
        "failures": body["failures"][:10],
        "accepted_by_the_service": sum(r.get("accepted", 0) for r in rates),
        "refused_by_the_service": sum(r.get("rejected", 0) for r in rates),
        "missing_auth_warnings": body["warnings"].get("missing_auth", []),
        "exit_code": done.returncode,
        "seconds": took,
        "output_tail": done.stdout[-1500:] if done.returncode else "",
    }


def schemathesis(service: str, url: str, token: str, cases: int, seed: int,
                 report_dir: Path, paths: list[str] | None = None) -> dict[str, Any]:
    """Schemathesis runs (new seed each) until at least ``cases`` cases were generated:
    operations whose inputs have few shapes yield fewer cases than asked for."""
    per_operation = max(10, math.ceil(cases / (len(paths) if paths else operation_count(url))))
    runs: list[dict[str, Any]] = []
    while sum(r["cases"] for r in runs) < cases and len(runs) < 5:
        missing = cases - sum(r["cases"] for r in runs)
        if runs:  # scale by what the last run yielded per example asked for
            last = runs[-1]
            per_operation = max(10, math.ceil(1.2 * missing * last["max_examples_per_operation"]
                                              / max(1, last["cases"])))
        runs.append(schemathesis_once(service, url, token, per_operation, seed + len(runs),
                                      report_dir / f"schemathesis-{service}-{len(runs)}.json",
                                      paths))
    summed = ("cases", "cases_with_failures", "server_errors", "errors",
              "accepted_by_the_service", "refused_by_the_service", "seconds")
    return {"operations": runs[0]["operations"], "runs": runs,
            **{key: round(sum(r[key] for r in runs), 1) for key in summed}}


# 2. The hostile-upload corpus ------------------------------------------------------------

def _image(fmt: str, size: tuple[int, int] = (320, 240), mode: str = "RGB",
           **save: Any) -> bytes:
    rgb = Image.open(io.BytesIO(make_test_image(*size, "PNG"))).convert("RGB")
    image = rgb.convert(mode) if mode != "RGB" else rgb
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_header(width: int, height: int, mode: int = 0) -> bytes:
    """A PNG signature and IHDR (8-bit; colour type ``mode``)."""
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0))


def decompression_bomb(side: int = 12000) -> bytes:
    """A valid grayscale PNG of side × side black pixels: tiny on disk, huge decoded."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    parts = [compressor.compress(row) for _ in range(side)]
    idat = b"".join(parts) + compressor.flush()
    return _png_header(side, side) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A valid JPEG whose frame header (SOF0) claims other dimensions."""
    data = bytearray(_image("JPEG"))
    at = data.find(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def hostile_corpus(max_bytes: int) -> list[tuple[str, str, bytes, str]]:
    """(case, file name, bytes, content type) for every hostile upload."""
    jpeg = _image("JPEG")
    png = _image("PNG")
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation: rotate 90°
    Image.open(io.BytesIO(jpeg)).save(rotated, format="JPEG", exif=exif)
    sixteen = io.BytesIO()
    Image.fromarray(np.full((120, 160), 40000, dtype=np.uint16)).save(sixteen, format="PNG")
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    return [
        ("not an image (text)", "render.jpg", b"hola, esto no es una imagen\n" * 20,
         "image/jpeg"),
        ("HTML named .jpg", "render.jpg",
         b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "image/jpeg"),
        ("SVG named .png", "render.png",
         b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>',
         "image/png"),
        ("PDF", "render.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
         "application/pdf"),
        ("truncated JPEG (half)", "render.jpg", jpeg[: len(jpeg) // 2], "image/jpeg"),
        ("JPEG header only", "render.jpg", jpeg[:20], "image/jpeg"),
        ("truncated PNG", "render.png", png[: len(png) // 3], "image/png"),
        ("PNG with a corrupt CRC", "render.png", bytes(bad_crc), "image/png"),
        ("empty file", "render.jpg", b"", "image/jpeg"),
        ("one byte", "render.jpg", b"\xff", "image/jpeg"),
        ("PNG header claiming 100000×100000", "render.png",
         _png_header(100_000, 100_000, 2) + _png_chunk(b"IEND", b""), "image/png"),
        ("PNG header claiming 0×0", "render.png",
         _png_header(0, 0, 2) + _png_chunk(b"IEND", b""), "image/png"),
        ("JPEG frame claiming 65500×65500", "render.jpg", jpeg_claiming(65500, 65500),
         "image/jpeg"),
        ("decompression bomb (PNG 12000×12000, 144 MP)", "bomb.png", decompression_bomb(),
         "image/png"),
        ("GIF", "render.gif", _image("GIF"), "image/gif"),
        ("BMP", "render.bmp", _image("BMP"), "image/bmp"),
        ("TIFF", "render.tif", _image("TIFF"), "image/tiff"),
        ("ICO", "render.ico", _image("ICO", (64, 64)), "image/x-icon"),
        ("over the byte limit (JPEG magic + zeros)", "big.jpg",
         b"\xff\xd8\xff\xe0" + b"\0" * (max_bytes + 1024), "image/jpeg"),
        ("file name with path traversal (valid JPEG)", "../../../etc/passwd.jpg", jpeg,
         "image/jpeg"),
        ("300-character file name with NUL (valid PNG)", "ñ" * 300 + "\0.png", png, "image/png"),
        ("valid PNG sent as text/html (accepted)", "render.html", png, "text/html"),
        ("JPEG followed by HTML, a polyglot (accepted: re-encoded)", "render.jpg",
         jpeg + b"<html><script></script>", "image/jpeg"),
        ("CMYK JPEG (accepted)", "cmyk.jpg", _image("JPEG", mode="CMYK"), "image/jpeg"),
        ("16-bit grayscale PNG (accepted)", "deep.png", sixteen.getvalue(), "image/png"),
        ("PNG with alpha (accepted)", "alpha.png", _image("PNG", mode="RGBA"), "image/png"),
        ("palette PNG (accepted)", "palette.png", _image("PNG", mode="P"), "image/png"),
        ("WebP (accepted)", "render.webp", _image("WEBP"), "image/webp"),
        ("JPEG with EXIF rotation (accepted)", "rotated.jpg", rotated.getvalue(), "image/jpeg"),
    ]


def post_upload(client: httpx.Client, name: str, data: bytes, content_type: str
                ) -> httpx.Response:
    return client.post(UPLOAD, data={"mode": "structure"},
                       files={"image": (name, data, content_type)})


def run_corpus(client: httpx.Client, max_bytes: int) -> list[dict[str, Any]]:
    rows = []
    for case, name, data, content_type in hostile_corpus(max_bytes):
        answer = post_upload(client, name, data, content_type)
        detail = ""
        if answer.status_code >= 400:
            try:
                detail = str(answer.json().get("detail", ""))[:160]
            except ValueError:
                detail = answer.text[:160]
        expected = "accepted" if "(accepted" in case or "(valid" in case else "refused"
        as_expected = (answer.status_code == 202 if expected == "accepted"
                       else 400 <= answer.status_code < 500)
        rows.append({"case": case, "bytes": len(data), "status": answer.status_code,
                     "expected": expected, "as_expected": as_expected, "detail": detail})
    return rows


# 3. Mutated images -----------------------------------------------------------------------

def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A copy of ``data`` damaged at random: flipped, inserted or deleted bytes, or cut."""
    out = bytearray(data)
    kind = rng.choices(["flip", "insert", "delete", "cut"], weights=[6, 1, 1, 1])[0]
    if kind == "flip":
        for _ in range(rng.randint(1, 32)):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    elif kind == "insert":
        at = rng.randrange(len(out))
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "delete":
        at = rng.randrange(len(out))
        del out[at:at + rng.randint(1, 64)]
    else:
        del out[rng.randrange(1, len(out)):]
    return bytes(out), kind


def run_mutations(client: httpx.Client, count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    bases = {"JPEG": (_image("JPEG", (160, 120), quality=90), "image/jpeg"),
             "PNG": (_image("PNG", (160, 120)), "image/png")}
    statuses: dict[str, Counter[int]] = {fmt: Counter() for fmt in bases}
    kinds: Counter[str] = Counter()
    server_errors: list[dict[str, Any]] = []
    for i in range(count):
        fmt = "JPEG" if i % 2 == 0 else "PNG"
        base, content_type = bases[fmt]
        data, kind = mutate(base, rng)
        kinds[kind] += 1
        answer = post_upload(client, f"mutated.{fmt.lower()}", data, content_type)
        statuses[fmt][answer.status_code] += 1
        if answer.status_code >= 500 and len(server_errors) < 10:
            server_errors.append({"case": i, "format": fmt, "mutation": kind,
                                  "status": answer.status_code, "body": answer.text[:300]})
    return {"cases": count, "mutations": dict(kinds),
            "statuses": {fmt: dict(c) for fmt, c in statuses.items()},
            "server_errors": sum(n for c in statuses.values() for s, n in c.items() if s >= 500),
            "server_error_samples": server_errors}


# The run ---------------------------------------------------------------------------------

def tracebacks(log_dir: Path) -> dict[str, list[str]]:
    """Per service, the last line of each traceback in its log."""
    found: dict[str, list[str]] = {}
    for service in SERVICES:
        log = log_dir / f"{service}.log"
        if not log.exists():
            continue
        lines = log.read_text(errors="replace").splitlines()
        ends = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                j = i + 1
                while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j]):
                    j += 1
                ends.append(lines[j][:300] if j < len(lines) else "?")
        if ends:
            found[service] = ends
    return found


def fuzz(cluster: ProofCluster, *, cases: int, mutations: int, seed: int,
         services: list[str]) -> dict[str, Any]:
    from services.common.settings import DEV_SERVICE_TOKEN
    from services.gateway.settings import GatewaySettings

    trainer_token = next(iter(cluster.tokens.values()))
    report_dir = cluster.work_dir / "reports"
    report_dir.mkdir(exist_ok=True)
    result: dict[str, Any] = {"schemathesis": {}}
    for service in services:
        token = trainer_token if service == "gateway" else DEV_SERVICE_TOKEN
        result["schemathesis"][service] = schemathesis(
            service, cluster.url(service), token, cases, seed, report_dir)
    if "gateway" in services:
        # Routes a trainer may not use (401/403 to every case above) are fuzzed again with
        # the caller that may: an admin's token, or the service token for /metrics.
        refused = sorted({op.split(" ", 1)[1] for run in result["schemathesis"]["gateway"]["runs"]
                          for op in run["missing_auth_warnings"]})
        for name, token, paths in (
                ("gateway (admin)", next(iter(cluster.admin_tokens.values())),
                 [p for p in refused if p != "/metrics"]),
                ("gateway (service token)", DEV_SERVICE_TOKEN,
                 [p for p in refused if p == "/metrics"])):
            if paths:
                share = cases * len(paths) // operation_count(cluster.url("gateway"))
                result["schemathesis"][name] = schemathesis(
                    re.sub(r"\W+", "-", name).strip("-"), cluster.url("gateway"), token,
                    max(10, share), seed, report_dir, paths)
    max_bytes = GatewaySettings().max_upload_bytes
    with httpx.Client(base_url=cluster.url("gateway"), timeout=120,
                      headers={"Authorization": f"Bearer {trainer_token}"}) as client:
        result["hostile_uploads"] = run_corpus(client, max_bytes)
        result["mutated_images"] = run_mutations(client, mutations, seed)
    with httpx.Client(headers=internal_headers(), timeout=10) as client:
        result["alive_at_the_end"] = {
            s: cluster.cluster.processes[s].poll() is None
            and client.get(cluster.url(s) + "/healthz").status_code == 200 for s in SERVICES}
    result["tracebacks_in_logs"] = tracebacks(cluster.work_dir / "logs")
    totals = {
        "schemathesis_server_errors": sum(r["server_errors"]
                                          for r in result["schemathesis"].values()),
        "schemathesis_errors": sum(r["errors"] for r in result["schemathesis"].values()),
        "hostile_upload_server_errors": sum(r["status"] >= 500
                                            for r in result["hostile_uploads"]),
        "hostile_uploads_not_as_expected": sum(not r["as_expected"]
                                               for r in result["hostile_uploads"]),
        "mutated_image_server_errors": result["mutated_images"]["server_errors"],
        "tracebacks_in_logs": sum(len(v) for v in result["tracebacks_in_logs"].values()),
        "services_down": sum(not up for up in result["alive_at_the_end"].values()),
    }
    result["totals"] = totals
    result["passed"] = all(v == 0 for v in totals.values()) and all(
        result["schemathesis"][s]["cases"] >= cases for s in services)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(f"\nfuzz on {result['database']}")
    print(f"{'schemathesis':24} {'operations':>10} {'cases':>7} {'5xx':>5} {'errors':>7} "
          f"{'accepted':>9} {'refused':>8} {'seconds':>8}")
    for service, row in result["schemathesis"].items():
        print(f"{service:24} {row['operations']:>10} {row['cases']:>7} {row['server_errors']:>5} "
              f"{row['errors']:>7} {row['accepted_by_the_service']:>9} "
              f"{row['refused_by_the_service']:>8} {row['seconds']:>8}")
    print("\nhostile uploads (POST /api/enhance/train)")
    for row in result["hostile_uploads"]:
        mark = "" if row["as_expected"] else "  ← expected " + row["expected"]
        print(f"  {row['status']:>3}  {row['case']:58} {row['detail'][:60]}{mark}")
    mutated = result["mutated_images"]
    print(f"\nmutated images: {mutated['cases']} cases {mutated['mutations']}; statuses "
          f"{mutated['statuses']}; 5xx {mutated['server_errors']}")
    print(f"tracebacks in the services' logs: {result['totals']['tracebacks_in_logs']} · "
          f"services up at the end: {sum(result['alive_at_the_end'].values())}/4")
    print("PASSED" if result["passed"] else f"FAILED: {result['totals']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000,
                        help="fewest schemathesis cases per service")
    parser.add_argument("--mutations", type=int, default=500, help="mutated images posted")
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--service", choices=SERVICES, action="append",
                        help="schemathesis on these services only (default: all four)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with proof_cluster(args.database, 1, admins=1) as cluster:
            result = fuzz(cluster, cases=args.cases, mutations=args.mutations, seed=args.seed,
                          services=args.service or list(SERVICES))
    except ProofError as exc:
        print(f"fuzz on {args.database} could not run: {exc}", file=sys.stderr)
        return 2
    result.update(database=args.database, seed=args.seed, wall_s=round(time.monotonic()
                  - started, 1), machine=machine(),
                  command="python -m bench.fuzz " + " ".join(argv or sys.argv[1:]))
    print_table(result)
    print(f"wrote {write_result(f'fuzz-{args.database}.json', result)}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
