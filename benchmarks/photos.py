"""What a hostile photo upload costs: CPU seconds and peak memory, one process per case.

    .venv/bin/python benchmarks/photos.py [--skip-serve]

Each single case runs in a fresh child process: the app in one process (Flask's test client),
a signed-in phone and a check-in, one small warm-up upload, then the measured upload. CPU is the
process's CPU time across the upload; memory is the peak resident set (VmHWM, reset through
/proc/self/clear_refs just before the upload) against the resident set at that moment. Then
`companion serve --workers 1 --threads 4` takes four uploads of each case at once, and the one
worker's peak resident set (absolute) and CPU are read from /proc. Targets (issue 12): a hostile
upload under 100 MB and 0.5 s of CPU; four at once keep a worker under 300 MB.
"""

import argparse
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import psutil
from PIL import Image

from companion import create_app
from companion.cli import migrate
from testkit.processes import (
    COMPANION,
    env_for,
    free_port,
    sign_in_client,
    sign_in_phone,
    wait_for_health,
)

PASSWORD = "photo bench practitioner passphrase"
SUBJECT = "mailto:ops@clinic-bench.net"
MB = 1024 * 1024
CPU_TARGET, MEMORY_TARGET, WORKER_TARGET = 0.5, 100, 300


# The hostile (and the honest but heavy) uploads --------------------------------------------


def zero_png() -> bytes:
    """The issue's case: a 154 KB all-zero 6300 x 6300 RGBA PNG (40 MP, ~635 MB decoded)."""
    buf = io.BytesIO()
    Image.new("RGBA", (6300, 6300)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def textured(size: tuple[int, int]) -> Image.Image:
    """Noise and gradients: an image with texture, as a phone camera makes."""
    noise = Image.effect_noise((size[0] // 4, size[1] // 4), 60)
    noise = noise.resize(size, Image.Resampling.BILINEAR)
    ramp = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (noise, ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def phone_jpeg(progressive: bool = False) -> bytes:
    """A 24 MP (6000 x 4000) JPEG with texture, as a phone camera makes."""
    buf = io.BytesIO()
    textured((6000, 4000)).save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def textured_webp(size: tuple[int, int]) -> bytes:
    """A lossy WebP with texture at quality 100: libwebp's most work a pixel (no draft mode)."""
    buf = io.BytesIO()
    textured(size).save(buf, "WEBP", quality=100)
    return buf.getvalue()


def bomb_png() -> bytes:
    """A decompression bomb: a tiny PNG that claims 30000 x 30000 pixels."""
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def zeros(fmt: str, mode: str, size: tuple[int, int]) -> bytes:
    """An all-zero image: the most pixels for the fewest bytes."""
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt, **({"optimize": True} if fmt == "PNG" else {}))
    return buf.getvalue()


def gradient_webp(size: tuple[int, int]) -> bytes:
    """A lossless WebP of smooth gradients: a few KB that decode at full size, 4 bytes a pixel."""
    ramp = Image.linear_gradient("L").resize(size)
    img = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_180), ramp))
    buf = io.BytesIO()
    img.save(buf, "WEBP", lossless=True)
    return buf.getvalue()


CASES = {
    "zero_png_6300": (zero_png, "image/png"),
    "jpeg_24mp": (phone_jpeg, "image/jpeg"),
    "jpeg_24mp_progressive": (lambda: phone_jpeg(progressive=True), "image/jpeg"),
    "bomb_png_30000": (bomb_png, "image/png"),
    # The largest still decoded: 12 MP in RGB, 6 MP with alpha (the decode budget).
    "png_rgb_12mp": (lambda: zeros("PNG", "RGB", (4000, 3000)), "image/png"),
    "png_rgba_6mp": (lambda: zeros("PNG", "RGBA", (2440, 2440)), "image/png"),
    # WebP (libwebp scales as it decodes): 12 MP lossy, all-zero and textured; lossless keeps 4 bytes a pixel while it
    # decodes (a gradient: no palette to pack it), lossy with alpha up to 5 (~9 MP).
    "webp_rgb_12mp": (lambda: zeros("WEBP", "RGB", (4000, 3000)), "image/webp"),
    "webp_textured_12mp": (lambda: textured_webp((4000, 3000)), "image/webp"),
    "webp_lossless_12mp": (lambda: gradient_webp((4000, 3000)), "image/webp"),
    "webp_rgba_9mp": (lambda: zeros("WEBP", "RGBA", (3000, 3000)), "image/webp"),
}


def small_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 120, 110)).save(buf, "JPEG")
    return buf.getvalue()


def checkin_body() -> dict:
    return {
        "id": str(uuid.uuid4()),
        "taken_at": datetime.now(UTC).isoformat(),
        "redness": 1,
        "swelling": 1,
        "pain": 1,
    }


# One case in one process ---------------------------------------------------------------


def status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class AppHttp:
    """testkit.processes.Http's `call`, over Flask's test client (one cookie jar each)."""

    def __init__(self, app):
        self.client = app.test_client()

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None, dict]:
        r = self.client.open(path, method=method, json=body)
        return r.status_code, r.get_json(silent=True), dict(r.headers)


def one_case(name: str, path: str) -> dict:
    """Measure one upload of the file at `path` in this process (the child's side)."""
    data = Path(path).read_bytes()
    ctype = CASES[name][1]
    with tempfile.TemporaryDirectory(prefix="companion-photos-") as tmp:
        os.environ["COMPANION_INSTANCE_PATH"] = str(Path(tmp) / "instance")
        app = create_app({"TESTING": True, "VAPID_SUBJECT": SUBJECT})
        migrate(app)
        phone, _ = sign_in_phone(lambda: AppHttp(app), "dr@clinic-bench.net", PASSWORD)
        status, checkin, _ = phone.call("POST", "/api/checkins", checkin_body())
        assert status == 201, (status, checkin)
        url = f"/api/checkins/{checkin['id']}/photos"
        warm = phone.client.post(url, data=small_jpeg(), headers={"Content-Type": "image/jpeg"})
        assert warm.status_code == 201, warm.get_json()
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set
        rss = status_kb("self", "VmRSS")
        cpu, wall = time.process_time(), time.perf_counter()
        r = phone.client.post(url, data=data, headers={"Content-Type": ctype})
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        peak = status_kb("self", "VmHWM")
        answer = r.get_json() or {}
        return {
            "case": name,
            "bytes": len(data),
            "status": r.status_code,
            "code": (answer.get("error") or {}).get("code", ""),
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "rss_mb": round(rss / 1024, 1),
            "peak_mb": round(peak / 1024, 1),
            "delta_mb": round((peak - rss) / 1024, 1),
        }


def run_single(name: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", name, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# Four at once against one worker of `companion serve` ------------------------------------


def upload(port: int, cookie: str, checkin_id: str, data: bytes, ctype: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            f"/api/checkins/{checkin_id}/photos",
            body=data,
            headers={"Content-Type": ctype, "Cookie": cookie},
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def run_concurrent(files: dict[str, Path]) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="companion-photos-serve-") as tmp:
        port = free_port()
        # One phone sends every case's four uploads: past the hourly allowance (30) otherwise.
        env = env_for(
            Path(tmp) / "instance",
            COMPANION_VAPID_SUBJECT=SUBJECT,
            COMPANION_PHOTO_RATE_PER_HOUR="1000",
        )
        cmd = [COMPANION, "serve", "--port", str(port), "--workers", "1", "--threads", "4"]
        server = subprocess.Popen(
            [*cmd, "--no-dispatch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_health(port, server)
            (worker,) = psutil.Process(server.pid).children()
            phone, _ = sign_in_client(port, "dr@clinic-bench.net", PASSWORD)
            cookie = phone.cookie_header()
            status, checkin, _ = phone.call("POST", "/api/checkins", checkin_body())
            assert upload(port, cookie, checkin["id"], small_jpeg(), "image/jpeg") == 201
            for name, path in files.items():
                data, ctype = path.read_bytes(), CASES[name][1]
                ids = []
                for _ in range(4):  # a check-in each: at most 3 photos fit on one
                    status, checkin, _ = phone.call("POST", "/api/checkins", checkin_body())
                    assert status == 201, (status, checkin)
                    ids.append(checkin["id"])
                Path(f"/proc/{worker.pid}/clear_refs").write_text("5")
                rss = status_kb(worker.pid, "VmRSS")
                cpu = sum(worker.cpu_times()[:2])
                send = partial(upload, port, cookie, data=data, ctype=ctype)
                wall = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    statuses = list(pool.map(send, ids))
                wall = time.perf_counter() - wall
                results.append(
                    {
                        "case": name,
                        "statuses": sorted(statuses),
                        "cpu_s": round(sum(worker.cpu_times()[:2]) - cpu, 3),
                        "wall_s": round(wall, 3),
                        "rss_mb": round(rss / 1024, 1),
                        "peak_mb": round(status_kb(worker.pid, "VmHWM") / 1024, 1),
                    }
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", nargs=2, metavar=("CASE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-serve", action="store_true", help="only the single cases")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_case(*args.one)))
        return
    with tempfile.TemporaryDirectory(prefix="companion-photo-files-") as tmp:
        files = {}
        for name, (make, _) in CASES.items():
            files[name] = Path(tmp) / name
            files[name].write_bytes(make())
        print("One upload per process (targets: under 0.5 s CPU and 100 MB above the process)")
        print(
            f"{'case':24} {'KB':>7} {'status':>6} {'code':18} {'CPU s':>6} {'wall s':>6}"
            f" {'RSS MB':>7} {'peak MB':>7} {'+MB':>6}  ok"
        )
        for name, path in files.items():
            r = run_single(name, path)
            ok = r["cpu_s"] < CPU_TARGET and r["delta_mb"] < MEMORY_TARGET
            print(
                f"{name:24} {r['bytes'] / 1024:7.0f} {r['status']:6} {r['code']:18}"
                f" {r['cpu_s']:6.3f} {r['wall_s']:6.3f} {r['rss_mb']:7.1f} {r['peak_mb']:7.1f}"
                f" {r['delta_mb']:6.1f}  {'yes' if ok else 'NO'}"
            )
        if args.skip_serve:
            return
        print(
            "\nFour at once, `companion serve --workers 1 --threads 4` (target: worker under 300 MB)"
        )
        print(
            f"{'case':24} {'statuses':20} {'CPU s':>6} {'wall s':>6} {'RSS MB':>7} {'peak MB':>7}  ok"
        )
        for r in run_concurrent(files):
            ok = r["peak_mb"] < WORKER_TARGET
            print(
                f"{r['case']:24} {str(r['statuses']):20} {r['cpu_s']:6.3f} {r['wall_s']:6.3f}"
                f" {r['rss_mb']:7.1f} {r['peak_mb']:7.1f}  {'yes' if ok else 'NO'}"
            )


if __name__ == "__main__":
    main()
