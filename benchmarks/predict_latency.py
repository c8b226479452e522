"""How fast tagging is: a deployment file (.onnx) run by ONNX Runtime, against PyTorch.

Measures, for one model and the 800-pixel photos of ../shared/data/landmark_images_partial:

* **cold**: a new process that tags one photo (``landmarklib predict photo.jpg``, and
  ``predict_landmarks``), against ``python -c "import torch"`` on the same machine (median of
  5 runs each, taken in turns so that both see the same load);
* **warm**: one photo end to end with the model loaded (decode with JPEG draft mode, the one
  preprocessing, the network), and the network alone, ONNX Runtime and PyTorch (median of 30);
* **a folder**: photos per second through :func:`landmarklib.deployment.classify_photos`
  (decoding threads overlapping the network's batches) for a few thread settings, against
  PyTorch on batches of already decoded photos.

Where the 8-bit file of the deployment file is beside it (``landmarklib quantize``,
``MODEL.int8.onnx``), the cold start, the warm photo and the folder are measured for it too.

    python benchmarks/predict_latency.py --model runs/transfer_model.onnx
    python benchmarks/predict_latency.py            # trains a small model on the tiny subset

Prints every number and the ratios from this one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from landmarklib.quantization import quantize_model, quantized_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path,
                        help="deployment file (.onnx) with its training file (.pt) beside it "
                             "(default: train one on the tiny subset)")
    parser.add_argument("--copies", type=int, default=4,
                        help="copies of the 130 photos in the folder test (default 4: 520)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="only the warm photo: this many rounds, the float and the 8-bit "
                             "file taking turns (their end-to-end times vary from one minute "
                             "to the next on a shared machine)")
    args = parser.parse_args()
    model = args.model or _tiny_model()
    if args.rounds:
        return warm_rounds(model, args.rounds)
    photos = sorted((SHARED / "landmark_images_partial").rglob("*.jpg"))
    print(f"model {model}; {len(photos)} photos of ~800 px; load average "
          f"{os.getloadavg()[0]:.2f}")
    int8 = quantized_path(model)
    cold = cold_start(model, photos[0], int8 if int8.is_file() else None)
    warm = warm_photo(model, photos[0])
    folder = folder_rate(model, photos * args.copies)
    ratios = (f"RATIOS: cold CLI / import torch = {cold['cli'] / cold['torch']:.2f}; "
              f"PyTorch / ONNX Runtime, network alone = {warm['torch_ms'] / warm['onnx_ms']:.1f}x;"
              f" folder, best / PyTorch batches = {folder['best'] / folder['torch']:.1f}x")
    if int8.is_file():
        print(f"\nThe 8-bit file {int8.name}:")
        warm8 = warm_photo(int8, photos[0], torch_too=False)
        folder8 = folder_rate(int8, photos * args.copies, settings=((None, 2, 32),),
                              torch_too=False)
        ratios += (f"; 8-bit / float: cold CLI {cold['cli int8'] / cold['cli']:.2f}, warm "
                   f"photo {warm8['end_to_end_ms'] / warm['end_to_end_ms']:.2f}, network "
                   f"{warm8['onnx_ms'] / warm['onnx_ms']:.2f}, folder "
                   f"{folder8['best'] / folder['best']:.2f}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print(ratios)


def _tiny_model() -> Path:
    from landmarklib import recipes
    from landmarklib.data import tiny_data_root

    model = recipes.quick_tiny_model(Path(tempfile.mkdtemp()) / "tiny_model.pt")
    quantize_model(model, sorted((tiny_data_root() / "train").rglob("*.jpg")))
    return model


def _seconds(code: str) -> float:
    """Wall-clock seconds of ``python -c code`` in a new process (its output discarded)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _predict(photo: Path, model: Path) -> str:
    return ("import sys; from landmarklib.cli import main; "
            f"sys.exit(main(['predict', {str(photo)!r}, '--model', {str(model)!r}]))")


def cold_start(model: Path, photo: Path, int8: Path | None = None) -> dict:
    commands = {
        "torch": "import torch",
        "onnxruntime": "import onnxruntime, numpy, PIL",
        "cli": _predict(photo, model),
        **({"cli int8": _predict(photo, int8)} if int8 else {}),
        "predict_landmarks": ("from landmarklib.inference import predict_landmarks; "
                              f"predict_landmarks({str(photo)!r}, k=5, model={str(model)!r})"),
    }
    times = {name: [] for name in commands}
    for _ in range(5):  # in turns: every command sees the same moments of load
        for name, code in commands.items():
            times[name].append(_seconds(code))
    result = {name: statistics.median(values) for name, values in times.items()}
    print("cold, new process (median of 5):")
    for name, seconds in result.items():
        print(f"  {name:18s} {seconds:6.2f} s  ({seconds / result['torch']:.2f} x import torch)")
    return result


def _median_ms(run, repeats: int = 30) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def warm_photo(model: Path, photo: Path, torch_too: bool = True) -> dict:
    from landmarklib import deployment, export
    from landmarklib.images import open_image

    predictor = deployment.get_predictor(model)
    end_to_end = _median_ms(lambda: predictor.top_k(photo, 5))
    decode = _median_ms(lambda: open_image(photo, short_side=predictor.input_size))
    image = open_image(photo, short_side=predictor.input_size)
    prepare = _median_ms(lambda: predictor.inputs([image]))
    x = predictor.inputs([image])
    onnx_ms = _median_ms(lambda: predictor.session.run(None, {"images": x}))
    torch_ms = float("nan")
    if torch_too:
        import torch

        saved = export.load_model(model.with_suffix(".pt"))
        with torch.inference_mode():
            torch_ms = _median_ms(lambda: saved.model(torch.from_numpy(x)))
    print(f"warm, one photo ({image.size[0]}x{image.size[1]} after draft decoding), median of 30:"
          f"\n  end to end {end_to_end:.1f} ms = decode {decode:.1f} + preprocess {prepare:.1f} "
          f"+ network {onnx_ms:.1f} (ONNX Runtime; PyTorch {torch_ms:.1f} ms)")
    return {"end_to_end_ms": end_to_end, "onnx_ms": onnx_ms, "torch_ms": torch_ms}


SETTINGS = ((None, 2, 16), (2, 1, 16), (1, 1, 16), (2, 2, 32), (1, 2, 16), (None, 2, 32))


def warm_rounds(model: Path, rounds: int) -> None:
    """The warm photo, end to end, ``rounds`` times for each file, in turns."""
    photo = sorted((SHARED / "landmark_images_partial").rglob("*.jpg"))[0]
    files = [f for f in (model, quantized_path(model)) if f.is_file()]
    times = {f.name: [] for f in files}
    for _ in range(rounds):
        for file in files:
            times[file.name].append(warm_photo(file, photo, torch_too=False)["end_to_end_ms"])
            time.sleep(5)
    for name, values in times.items():
        print(f"{name}: end to end {', '.join(f'{v:.1f}' for v in values)} ms; median "
              f"{statistics.median(values):.1f} ms (load average {os.getloadavg()[0]:.2f})")


def folder_rate(model: Path, paths: list[Path], settings=SETTINGS, torch_too: bool = True
                ) -> dict:
    from landmarklib import deployment, export
    from landmarklib.images import open_image

    print(f"a folder of {len(paths)} photos, end to end (decode + network):")
    rates = {}
    for threads, workers, batch in settings:
        predictor = deployment.Predictor(model, threads=threads)
        start = time.perf_counter()
        done = sum(1 for _ in deployment.classify_photos(paths, predictor, batch, workers))
        rate = done / (time.perf_counter() - start)
        rates[(threads, workers, batch)] = rate
        print(f"  onnxruntime threads {threads or 'default':>7}, decoding threads {workers}, "
              f"batch {batch:2d}: {rate:6.1f} photos/s")
    if not torch_too:
        return {"best": max(rates.values())}
    import torch

    saved = export.load_model(model.with_suffix(".pt"))
    predictor = deployment.get_predictor(model)
    images = [open_image(p, short_side=predictor.input_size) for p in paths[:64]]
    x = torch.from_numpy(predictor.inputs(images))
    with torch.inference_mode():
        seconds = _median_ms(lambda: saved.model(x), repeats=3) / 1000
    torch_rate = len(images) / seconds
    print(f"  PyTorch, network alone on batches of 64 decoded photos: {torch_rate:.1f} photos/s")
    return {"best": max(rates.values()), "torch": torch_rate}


if __name__ == "__main__":
    main()
