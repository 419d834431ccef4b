"""Start a private Orthanc on loopback ports, for trying ``medlens pacs`` by hand.

Usage:
    python scripts/start_orthanc.py                 # prints URL and credentials, Ctrl-C stops
    python scripts/start_orthanc.py -- CMD ARGS...  # runs CMD with the server up, then stops it

The server's config, database and log live in a temporary folder (or ``--workdir``); see
``medlens.pacs.local_orthanc`` for the choices made (loopback only, a generated
password, the DICOMweb plugin when installed). ``CMD`` (and the printed lines) get
``MEDLENS_ORTHANC_URL``, ``MEDLENS_ORTHANC_USER`` and ``MEDLENS_ORTHANC_PASSWORD``; the
``medlens pacs`` commands read the last two.

Example:
    python scripts/start_orthanc.py -- sh -c \\
        'medlens pacs process "$MEDLENS_ORTHANC_URL" 1.2.3 runs/liver'
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys

from medlens.errors import MedlensError
from medlens.pacs.local_orthanc import LocalOrthanc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stable-age", type=int, default=2, help="seconds (default 2)")
    parser.add_argument("--workdir", default=None, help="keep config and database here")
    parser.add_argument("--no-dicomweb", action="store_true", help="do not load the plugin")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    server = LocalOrthanc(
        stable_age_s=args.stable_age,
        dicomweb=False if args.no_dicomweb else None,
        workdir=args.workdir,
    )
    try:
        server.start()
    except MedlensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = {
        "MEDLENS_ORTHANC_URL": server.url,
        "MEDLENS_ORTHANC_USER": server.auth[0],
        "MEDLENS_ORTHANC_PASSWORD": server.auth[1],
    }
    try:
        if command:
            return subprocess.call(command, env={**os.environ, **env})
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
        print(
            f"# Orthanc {server.url} (DICOM port {server.dicom_port}, "
            f"DICOMweb {'on' if server.has_dicomweb else 'off'}); Ctrl-C stops it",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
