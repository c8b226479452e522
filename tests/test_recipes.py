"""landmarklib.recipes: whole training runs, from a dataset folder to a model file."""

from __future__ import annotations

import math

import pytest
import torch

from landmarklib import data, recipes, transfer


def test_recipe_fine_tunes_and_saves_an_ensemble(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path / "cache"))
    recipe = recipes.TransferRecipe(hidden=32, epochs=6, finetune_epochs=2, batch_size=16,
                                    members=2)
    result = recipes.train_transfer(data.tiny_data_root(), tmp_path / "m.pt", recipe,
                                    progress=False)
    assert result.frozen.total == result.test.total == 21
    # Real ImageNet features tell the 7 tiny landmarks apart easily: a margin of 8 photos.
    assert result.frozen.accuracy >= 0.6 and result.test.accuracy >= 0.6
    # Fine-tuning starts from the trained head and never ends worse on validation loss.
    assert result.history.epoch == [0, 1, 2]
    assert min(result.history.valid_loss) <= result.history.valid_loss[0]
    record = torch.load(result.model_path, weights_only=True)
    assert record["architecture"] == {"kind": "finetuned", "backbone": "efficientnet_lite0",
                                      "hidden": 32, "dropout": 0.5, "members": 2,
                                      "top_blocks": 3}
    assert record["precision"] == result.precision == record["metrics"]["precision"]
    assert result.precision in ("float32", "bfloat16")
    assert math.isclose(record["metrics"]["test_accuracy"], result.test.accuracy)
    assert "frozen_test_accuracy" in record["metrics"]
    # The trunk's activations were cached: train, train mirrored, valid, test.
    cached = sorted((tmp_path / "cache" / "features").glob("efficientnet_lite0-trunk3-*.pt"))
    assert len(cached) == 4


def test_the_recipes_precision_is_used_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDMARKLIB_CACHE", str(tmp_path / "cache"))
    runs = {}
    for precision in ("float32", "bfloat16"):
        recipe = recipes.TransferRecipe(hidden=16, epochs=2, finetune_epochs=1, batch_size=32,
                                        members=1, mirrored=False, precision=precision)
        runs[precision] = recipes.train_transfer(data.tiny_data_root(),
                                                 tmp_path / f"{precision}.pt", recipe,
                                                 progress=False)
        assert runs[precision].precision == precision
        assert torch.load(tmp_path / f"{precision}.pt", weights_only=True)["precision"] == precision
    # Cached activations: bfloat16 ones kept in bfloat16, and the test split in float32 for both.
    stored = [torch.load(p, weights_only=True)["features"].dtype
              for p in (tmp_path / "cache" / "features").glob("*.pt")]
    assert stored.count(torch.bfloat16) == 2 and stored.count(torch.float32) == 3


def test_bad_member_counts_and_backbones_fail_before_any_work(monkeypatch, tmp_path):
    import landmarklib.backbones

    monkeypatch.setattr(landmarklib.backbones, "create_backbone",
                        lambda *a, **k: pytest.fail("built a backbone before checking"))
    with pytest.raises(ValueError, match="vgg19 cannot be cut into trunk and top"):
        transfer.build_finetuned_model(7, "vgg19")
    with pytest.raises(ValueError, match="at least 1 member, not 0"):
        transfer.build_finetuned_model(7, members=0)
    monkeypatch.setattr(data, "make_loaders", lambda *a, **k: pytest.fail("loaded data"))
    with pytest.raises(ValueError, match="members must be 0"):
        recipes.train_transfer(tmp_path, recipe=recipes.TransferRecipe(members=-1))
    with pytest.raises(ValueError, match="vgg19 cannot be fine-tuned here"):
        recipes.train_transfer(tmp_path, recipe=recipes.TransferRecipe(backbone="vgg19"))


def test_training_never_imports_inference():
    from helpers import imported_by

    modules = imported_by("import landmarklib.recipes, landmarklib.fitting")
    assert "landmarklib.recipes" in modules
    assert not {m for m in modules if m.startswith(("landmarklib.inference",
                                                    "landmarklib.deployment",
                                                    "landmarklib.app", "landmarklib.cli"))}
