"""Lighthouse accessibility and best-practices scores of the client app's home and check-in.

    .venv/bin/python benchmarks/lighthouse.py [--runs 1] [--keep]

Starts `companion run` on a fresh instance under /tmp, signs a client's phone in over HTTP
(testkit), sends one check-in so the home page shows an assessment and the recovery chart,
then runs npm's `lighthouse` (its default mobile preset) in Debian's Chromium against each
page with the phone's session cookie, and prints each score with the audits that lost points.
Needs `npm ci` (lighthouse is a dev dependency) and /usr/bin/chromium. Target: 95 or more in
both categories on both pages.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from testkit.processes import COMPANION, env_for, free_port, sign_in_client, wait_for_health

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ("accessibility", "best-practices")
PAGES = {"home": "/", "check-in": "/checkin"}
TARGET = 95


def lighthouse(url: str, cookie: str) -> dict:
    """Run Lighthouse once on `url` as the signed-in phone; return its JSON report."""
    out = subprocess.run(
        [
            str(LIGHTHOUSE),
            url,
            f"--chrome-path={CHROMIUM}",
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu --no-first-run",
            f"--only-categories={','.join(CATEGORIES)}",
            "--output=json",
            "--output-path=stdout",
            "--quiet",
            f"--extra-headers={json.dumps({'Cookie': cookie})}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"lighthouse failed on {url}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def lost_points(report: dict, category: str) -> list[str]:
    """The audits of a category that scored under 1, as 'id: title'."""
    audits = report["audits"]
    found = []
    for ref in report["categories"][category]["auditRefs"]:
        audit = audits[ref["id"]]
        if ref["weight"] and audit["score"] is not None and audit["score"] < 1:
            found.append(f"{audit['id']}: {audit['title']}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per page (the lowest counts)")
    parser.add_argument("--keep", action="store_true", help="keep the instance folder")
    args = parser.parse_args()
    if not LIGHTHOUSE.exists():
        raise SystemExit(f"{LIGHTHOUSE} is missing: run `npm ci` first")

    tmp = Path(tempfile.mkdtemp(prefix="companion-lighthouse-"))
    port = free_port()
    env = env_for(tmp / "instance")
    subprocess.run([COMPANION, "init-db"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [COMPANION, "run", "--host", "127.0.0.1", "--port", str(port), "--no-dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port, server)
        phone, _ = sign_in_client(port, "owner@lighthouse-clinic.net", "a long lighthouse password")
        status, answer, _ = phone.call(
            "POST",
            "/api/checkins",
            {
                "id": str(uuid.uuid4()),
                "taken_at": datetime.now(UTC).isoformat(),
                "redness": 2,
                "swelling": 1,
                "pain": 2,
            },
        )
        assert status == 201, (status, answer)
        print(f"Lighthouse {TARGET}+ target, mobile preset, {args.runs} run(s) a page, lowest kept")
        print(f"{'page':<10} {'accessibility':>14} {'best-practices':>15}  lost points")
        for name, path in PAGES.items():
            scores = dict.fromkeys(CATEGORIES, 100)
            lost: set[str] = set()
            for _ in range(args.runs):
                report = lighthouse(f"http://127.0.0.1:{port}{path}", phone.cookie_header())
                final = report.get("finalDisplayedUrl") or report.get("finalUrl")
                if not final.endswith(path):
                    raise RuntimeError(f"{path} ended at {final}: not signed in?")
                for category in CATEGORIES:
                    score = round(report["categories"][category]["score"] * 100)
                    scores[category] = min(scores[category], score)
                    lost.update(lost_points(report, category))
            print(
                f"{name:<10} {scores['accessibility']:>14} {scores['best-practices']:>15}"
                f"  {'; '.join(sorted(lost)) or '-'}"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
        if args.keep:
            print(f"instance kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
