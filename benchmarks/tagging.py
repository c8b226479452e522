"""Speed and memory of ``landmarklib tag``: photos per second end to end (decode, classify,
write the sidecar) on a folder of 800-pixel JPEGs, and where the time goes.

* end to end: :func:`landmarklib.tagging.tag_paths` on fresh folders of 100 and 400 copies of
  the photos in ../shared/data/landmark_images_partial (threshold 0: every photo is tagged), each
  size in its own process; photos/s, and the growth of the peak resident memory during the run
  over the memory after loading the model (Linux: /proc/self/status VmHWM, reset through
  /proc/self/clear_refs). Flat memory: the 400-photo run grows no more than the 100-photo one.
* where the time goes, step by step in one thread (the network with onnxruntime's threads), per
  photo: the EXIF GPS check, decoding
  (``open_image(path, short_side=input_size)``, JPEG draft mode), the classifier (batches of
  16), checking for a sidecar, writing a sidecar.

    python benchmarks/tagging.py [--model FILE] [--photos 100 400] [--batch-size 16] [--threads N]

``--threads`` sets onnxruntime's threads (default: its choice, one per core); the photos are
decoded by 2 threads meanwhile.

Without --model a model is trained on the tiny subset first (``recipes.quick_tiny_model``: the
default Lite0 backbone with a small head; the number of classes does not change the cost).
The load average (processes wanting a core, last minute) is printed before and after: with 2
cores, above about 1 means other jobs slowed the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTOS = SHARED / "landmark_images_partial"


def copies(folder: Path, count: int) -> Path:
    """``count`` copies of the 800-px photos, 50 to a subfolder."""
    sources = sorted(PHOTOS.rglob("*.jpg"))
    for index in range(count):
        target = folder / f"album_{index // 50:03d}" / f"photo_{index:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[index % len(sources)], target)
    return folder


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_one(model: str, count: int, batch_size: int, threads: int | None) -> dict:
    """In a child process: tag a fresh folder of ``count`` photos; seconds and memory."""
    from landmarklib import deployment, tagging
    from landmarklib.images import open_image

    classifier = deployment.Predictor(model, threads=threads)
    warm = [open_image(p, short_side=classifier.input_size)
            for p in sorted(PHOTOS.rglob("*.jpg"))[:batch_size]]
    classifier.run(warm)  # first-call costs (allocations, kernels) out of the timing
    del warm
    with tempfile.TemporaryDirectory() as tmp:
        folder = copies(Path(tmp), count)
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = memory_kib("VmRSS")
        start = time.perf_counter()
        summary = tagging.tag_paths([folder], classifier, threshold=0.0, batch_size=batch_size,
                                    progress=False)
        seconds = time.perf_counter() - start
        peak = memory_kib("VmHWM")
    assert summary.counts["tagged"] == count, summary
    return {"photos": count, "seconds": seconds, "photos_per_s": count / seconds,
            "rss_before_mib": before / 1024, "peak_growth_mib": (peak - before) / 1024}


def where_time_goes(model: str, batch_size: int, threads: int | None, count: int = 64) -> dict:
    """Milliseconds per photo for each step, one thread, on ``count`` photos."""
    from landmarklib import deployment, sidecars, tagging
    from landmarklib.images import open_image
    from landmarklib.places import place_for

    classifier = deployment.Predictor(model, threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        photos = sorted(copies(Path(tmp), count).rglob("*.jpg"))

        def per_photo(step) -> float:
            start = time.perf_counter()
            result = step()
            return (time.perf_counter() - start) * 1000 / count, result

        exif, _ = per_photo(lambda: [tagging._exif_gps(p) for p in photos])
        decode, images = per_photo(
            lambda: [open_image(p, short_side=classifier.input_size) for p in photos])
        classifier.run(images[:batch_size])  # warm-up
        classify, _ = per_photo(lambda: [classifier.run(images[i:i + batch_size])
                                         for i in range(0, count, batch_size)])
        check, _ = per_photo(lambda: [tagging._known_location(p, "m", "photo.jpg.xmp")
                                      for p in photos])
        place = place_for("16.Eiffel_Tower")
        tag = sidecars.Tag(place.name, place.folder, 0.9, classifier.model_id, place)
        write, _ = per_photo(lambda: [sidecars.write_sidecar(sidecars.sidecar_path(p), tag)
                                      for p in photos])
        reread, _ = per_photo(lambda: [tagging._known_location(p, "m", "photo.jpg.xmp")
                                       for p in photos])
    size = images[0].size
    return {"decoded_size": f"{size[0]}x{size[1]}", "exif_check_ms": exif, "decode_ms": decode,
            "classify_ms": classify, "sidecar_check_ms": check, "sidecar_write_ms": write,
            "sidecar_check_existing_ms": reread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model",
                        help="deployment file, .onnx (default: train one on the tiny subset)")
    parser.add_argument("--photos", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int,
                        help="onnxruntime threads (default: its choice, one per core)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.model, args.child, args.batch_size, args.threads)))
        return
    if args.model:
        model = str(Path(args.model).resolve())
    else:
        from landmarklib import recipes

        model = str(recipes.quick_tiny_model(Path(tempfile.mkdtemp()) / "tiny_model.pt"))
    print(f"cores: {os.cpu_count()}, onnxruntime threads: {args.threads or 'default'}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    for count in args.photos:
        command = [sys.executable, __file__, "--model", model, "--child", str(count),
                   "--batch-size", str(args.batch_size)]
        command += ["--threads", str(args.threads)] if args.threads else []
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        print(f"{count:5d} photos: {result['seconds']:6.1f} s, {result['photos_per_s']:5.1f} "
              f"photos/s; RSS after loading the model {result['rss_before_mib']:.0f} MiB, peak "
              f"growth during the run {result['peak_growth_mib']:.0f} MiB")
    steps = where_time_goes(model, args.batch_size, args.threads)
    print(f"step by step, ms per photo (decoded at {steps.pop('decoded_size')} px):")
    for step, ms in steps.items():
        print(f"  {step[:-3].replace('_', ' '):28s} {ms:7.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
