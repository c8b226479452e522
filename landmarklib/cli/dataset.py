"""``landmarklib download`` and ``landmarklib check``: the dataset."""

from __future__ import annotations

from landmarklib.cli.options import DATA_HELP


def add_parsers(commands) -> None:
    download = commands.add_parser("download", help="download and unzip the landmark dataset")
    download.add_argument("--dest", help="folder to download into (default: the cache folder)")
    download.set_defaults(run=_download)
    check = commands.add_parser("check", help="check a dataset folder (decodes every photo)")
    check.add_argument("--data", help=DATA_HELP)
    check.set_defaults(run=_check)


def _download(args) -> int:
    from landmarklib.data import download_landmarks

    print(download_landmarks(args.dest))
    return 0


def _check(args) -> int:
    from landmarklib.data import check_layout, data_root

    report = check_layout(data_root(args.data), warn=False, progress=True)
    print(report)
    return 1 if report.problems else 0
