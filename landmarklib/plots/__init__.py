"""Every matplotlib figure the notebooks show.

Each function draws one figure and returns it (``matplotlib.figure.Figure``), so a notebook
shows it and a script can ``fig.savefig(...)`` it. Nothing here computes results: the data
comes from :mod:`landmarklib.data`, :mod:`landmarklib.fitting`, :mod:`landmarklib.evaluation`
and :mod:`landmarklib.explain`. By notebook:

* :mod:`~landmarklib.plots.exploration`: class counts, photo grids, sizes, pixel histograms;
* :mod:`~landmarklib.plots.training`: loss curves, the live plot during training, the
  overfit check;
* :mod:`~landmarklib.plots.evaluation`: the confusion matrix;
* :mod:`~landmarklib.plots.explain`: filters, feature maps, Grad-CAM heatmaps;
* :mod:`~landmarklib.plots.beyond`: embeddings as a map, nearest photos, reliability diagrams,
  known against unknown photos.

Every public name is importable from here: ``from landmarklib import plots`` then
``plots.loss_curves(...)``.
"""

from landmarklib.plots.beyond import (
    embedding_map,
    neighbours,
    reliability_diagram,
    roc_curves,
    score_histograms,
)
from landmarklib.plots.evaluation import confusion_matrix
from landmarklib.plots.explain import (
    feature_map_grid,
    filter_grid,
    heatmap_grid,
    randomization_comparison,
)
from landmarklib.plots.exploration import (
    channel_histograms,
    class_counts,
    image_batch,
    image_sizes,
    photo,
    picture_grid,
    sample_grid,
)
from landmarklib.plots.training import LivePlot, in_notebook, loss_curves, overfit_curves

__all__ = [
    "embedding_map", "neighbours", "reliability_diagram", "roc_curves", "score_histograms",
    "confusion_matrix",
    "feature_map_grid", "filter_grid", "heatmap_grid", "randomization_comparison",
    "channel_histograms", "class_counts", "image_batch", "image_sizes", "photo", "picture_grid",
    "sample_grid",
    "LivePlot", "in_notebook", "loss_curves", "overfit_curves",
]
