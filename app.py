"""Landmark tagger: a Gradio web app. Upload a photo, get the most likely landmarks.

Run it (the Gradio extra is not part of the core package)::

    pip install -e ".[web]"
    python app.py                      # then open http://127.0.0.1:7860
    python app.py --model my_model.onnx --port 8000

This file sits at the repository root because that is where a Hugging Face Space looks for
``app.py``; a Space sets ``GRADIO_SERVER_NAME=0.0.0.0``, which this app honours.

It uses the same predictor as everything else (:func:`landmarklib.deployment.get_predictor`: the
deployment file, read once, run by ONNX Runtime; torch is never imported), and opens the
uploaded file itself, so its answers are exactly those of
:func:`landmarklib.inference.predict_landmarks` for the same photo. A photo the model is sure of
also gets its XMP sidecar, to download (:func:`landmarklib.tagging.sidecar_for`). With a memory
beside the model (:mod:`landmarklib.memory`) it answers with the added landmarks, calibrated
probabilities and the stored "I don't know" threshold, and shows the three most similar
training photos with their classes and similarities. The model file is
found as :func:`landmarklib.deployment.model_path` finds it: ``--model``, else
``$LANDMARKLIB_MODEL``, else where notebook 03 and ``landmarklib train`` save it.

See docs/apps.md for the three apps (this one, the notebook upload box and the Voila page).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a teaching app

import gradio as gr  # noqa: E402

from landmarklib.app import MAX_K  # noqa: E402
from landmarklib.data.locate import tiny_data_root  # noqa: E402
from landmarklib.deployment import answer_images, get_predictor, ranked  # noqa: E402
from landmarklib.images import ImageError, open_image  # noqa: E402
from landmarklib.inference import explain_photo  # noqa: E402
from landmarklib.tagging import sidecar_for  # noqa: E402

#: One test photo of each landmark in the tiny subset shipped with the package.
EXAMPLES = [sorted(folder.glob("*.jpg"))[0]
            for folder in sorted((tiny_data_root() / "test").iterdir()) if folder.is_dir()]


def classify(image_path: str | None, k: int, show_heatmap: bool = False,
             model: str | os.PathLike | None = None):
    """The ``k`` most likely landmarks of a photo, where the most likely one is, the XMP
    sidecar the photo would get in a library (:func:`landmarklib.tagging.sidecar_for`), and,
    when asked, where the model looks (:func:`landmarklib.inference.explain_photo`: the first
    heatmap imports torch and takes seconds).

    Returns:
        ``({landmark: probability}, sentence, sidecar file or None, heatmap or None,
        [(similar photo, "class, similarity"), ...])``: what ``gr.Label``, ``gr.Markdown``,
        ``gr.File``, ``gr.Image`` and ``gr.Gallery`` show (the gallery is empty without a
        memory).
    """
    if image_path is None:
        raise gr.Error("Upload a photo first.")
    predictor = get_predictor(model)
    try:
        image = open_image(image_path, short_side=predictor.input_size)
    except ImageError as error:
        raise gr.Error(f"Cannot use {Path(error.path).name}: {error.reason}") from None
    answer = answer_images([image], predictor, [image_path])[0]
    top = ranked(answer.probabilities, predictor.class_names, int(k))
    place = predictor.place(top[0][0])
    where = f"The {place.name} is in {place.where} ([map]({place.map_url}))." if place else ""
    if not answer.known:
        where = f"Not sure this shows a landmark I know. {where}"
    sidecar = sidecar_for(Path(image_path).name, answer.probabilities, predictor,
                          known=answer.known)
    heatmap = explain_photo(image, model) if show_heatmap else None
    similar = [(str(n.path), f"{n.name}, similarity {n.similarity:.2f}")
               for n in answer.neighbours if n.path.is_file()]
    return dict(top), where, str(sidecar) if sidecar else None, heatmap, similar


def build_demo(model: str | os.PathLike | None = None) -> gr.Interface:
    """The Gradio app: a photo and a ``k`` slider in; the top ``k`` and the place out.

    Raises:
        FileNotFoundError: there is no model file yet (the message says how to make one).
    """
    predictor = get_predictor(model)  # load the model now: fail at start, not at first photo
    most = min(MAX_K, len(predictor.class_names))
    return gr.Interface(
        fn=lambda image_path, k, show_heatmap: classify(image_path, k, show_heatmap, model),
        inputs=[
            gr.Image(type="filepath", label="Photo", sources=["upload", "clipboard"]),
            gr.Slider(1, most, value=min(3, most), step=1, label="How many landmarks (k)"),
            gr.Checkbox(label="Show where the model looks (Grad-CAM)"),
        ],
        outputs=[
            gr.Label(num_top_classes=most, label="Most likely landmarks"),
            gr.Markdown(label="Where"),
            gr.File(label="XMP sidecar: put it next to your photo, photo managers read the "
                          "place from it (only when the model is sure)"),
            gr.Image(type="pil", label="Where the model looks (red: the evidence)"),
            gr.Gallery(label="Most similar training photos", columns=3, height="auto"),
        ],
        examples=[[str(path), 3, False] for path in EXAMPLES],
        cache_examples=False,
        flagging_mode="never",
        title="Landmark tagger",
        description=(f"Which of {len(predictor.class_names)} famous landmarks is in your photo, "
                     "and where was it taken? A CNN from the landmarklib course."),
        api_name="predict",
    )


def main(argv: list[str] | None = None) -> None:
    """``python app.py [--model PATH] [--host HOST] [--port PORT]``: serve the app."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: $LANDMARKLIB_MODEL, else the "
                                        "one notebook 03 saves)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    try:
        demo = build_demo(args.model)
    except FileNotFoundError as error:  # no model yet: say how to make one, no traceback
        parser.exit(1, f"{error}\n")
    demo.launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
