"""Same answers: the deployment file (ONNX Runtime) against its training file (PyTorch).

Every test photo of a dataset goes through the one preprocessing, then through the PyTorch
network rebuilt from the training file (float32) and through the exported graph run by ONNX
Runtime. Prints how many photos get the same top-1 class (a different top-1 is accepted only
where PyTorch's two best classes are within 1e-4 of each other), the largest difference of
the probabilities, and both test accuracies. Where the 8-bit file of the deployment file is
beside it (``landmarklib quantize``, ``MODEL.int8.onnx``), the same against the float file.

    python benchmarks/onnx_agreement.py --model runs/transfer_model.onnx \
        [--data ../shared/data/landmarks44]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True,
                        help="deployment file (.onnx), its training file (.pt) beside it")
    parser.add_argument("--data", type=Path, default=SHARED / "landmarks44")
    args = parser.parse_args()

    import torch

    from landmarklib import deployment, export
    from landmarklib.data import check_layout
    from landmarklib.images import open_images
    from landmarklib.quantization import quantized_path

    predictor = deployment.Predictor(args.model, memory=False)
    int8_file = quantized_path(args.model)
    int8 = deployment.Predictor(int8_file, memory=False) if int8_file.is_file() else None
    saved = export.load_model(args.model.with_suffix(".pt"))
    samples = check_layout(args.data, warn=False).files["test"]
    theirs, ours, labels, small = [], [], [], []
    batch = []
    for (_, image), (_, label) in zip(
            open_images([p for p, _ in samples], predictor.input_size), samples):
        batch.append(image)
        labels.append(label)
        if len(batch) == 32 or len(labels) == len(samples):
            x = predictor.inputs(batch)
            with torch.inference_mode():
                theirs.append(saved.model(torch.from_numpy(x)).exp().numpy())
            ours.append(predictor.probabilities(batch))
            if int8 is not None:
                small.append(int8.probabilities(batch))
            batch = []
    theirs, ours, labels = np.concatenate(theirs), np.concatenate(ours), np.asarray(labels)
    same = ours.argmax(1) == theirs.argmax(1)
    top2 = np.sort(theirs, axis=1)[:, -2:]
    tied = (top2[:, 1] - top2[:, 0]) <= 1e-4
    print(f"{args.data.name}: {len(labels)} test photos; same top-1 for {same.sum()} "
          f"(different top-1 with a tie within 1e-4: {(~same & tied).sum()}, without: "
          f"{(~same & ~tied).sum()}); largest difference of probabilities "
          f"{np.abs(ours - theirs).max():.1e}")
    print(f"test accuracy: ONNX Runtime {(ours.argmax(1) == labels).mean():.2%}, PyTorch "
          f"{(theirs.argmax(1) == labels).mean():.2%}; model trained in {saved.precision}")
    if int8 is not None:
        small = np.concatenate(small)
        print(f"8-bit file {int8_file.name}: same top-1 as the float file for "
              f"{(small.argmax(1) == ours.argmax(1)).sum()}/{len(labels)} photos; difference of "
              f"probabilities mean {np.abs(small - ours).mean():.1e}, largest "
              f"{np.abs(small - ours).max():.2f}; test accuracy "
              f"{(small.argmax(1) == labels).mean():.2%}")


if __name__ == "__main__":
    main()
