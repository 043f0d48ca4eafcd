"""convat.explain on untrained models: shapes, finiteness, rollout algebra, scores and deletion curves."""

import numpy as np
import pytest
import timm
import torch

import convat.models  # noqa: F401  (registers the models with timm)
from convat.explain import (
    METHODS,
    attention_maps,
    attribute,
    deletion_auc,
    deletion_table,
    explain_maps,
    faithfulness_table,
    mass_in_mask,
    occlusion_window,
    pointing_game,
    rollout,
    rollout_matrix,
)
from convat.explain.attention import attention_modules, unfused_attention
from convat.explain.attribution import token_regions
from convat.training.loop import TrainConfig, build_model

SIZE = 32
MODELS = ["convat_tiny", "convat_tiny_avg", "ststnet", "offapexnet", "vit_me_tiny", "resnet_me"]


def make_model(name: str) -> torch.nn.Module:
    if name == "convat_tiny_avg":
        config = TrainConfig(model="convat_tiny", model_kwargs={"global_pool": "avg"})
    else:
        if name not in timm.list_models():
            pytest.skip(f"model {name} is not registered yet")
        config = TrainConfig(model=name)
    torch.manual_seed(0)
    return build_model(config, 3, 3, SIZE).eval()


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 3, SIZE, SIZE)).astype(np.float32), np.array([0, 1, 2])


@pytest.mark.parametrize("name", MODELS)
def test_every_method_gives_finite_nonnegative_maps_of_input_size(name, inputs):
    model = make_model(name)
    x, target = inputs
    maps = explain_maps(model, x, target, ig_steps=4, nt_samples=2)
    assert set(METHODS) <= set(maps)
    for method, m in maps.items():
        assert m.shape == (len(x), SIZE, SIZE), method
        assert np.isfinite(m).all() and (m >= 0).all(), method
        assert m.sum() > 0, f"{method} gave an all-zero map"


def test_unknown_method_is_named():
    model = make_model("convat_tiny")
    with pytest.raises(ValueError, match="gradcam"):
        attribute(model, np.zeros((1, 3, SIZE, SIZE), np.float32), 0, "lime")


def test_occlusion_is_constant_on_each_token_cell(inputs):
    model = make_model("convat_tiny")
    grid = model.grid_size[0]
    assert occlusion_window(model, SIZE) >= SIZE / grid
    regions = token_regions(SIZE, grid)
    assert len(np.unique(regions)) == grid * grid
    maps = attribute(model, inputs[0], inputs[1], "occlusion")
    for cell in range(grid * grid):
        values = maps[:, regions == cell]
        np.testing.assert_allclose(values, values[:, :1].repeat(values.shape[1], 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["convat_tiny", "convat_tiny_avg", "vit_me_tiny"])
def test_attention_capture_restores_fused_flag_and_rollout_rows_sum_to_one(name, inputs):
    model = make_model(name)
    modules = attention_modules(model)
    before = [m.fused_attn for m in modules]
    attns = attention_maps(model, inputs[0])
    assert [m.fused_attn for m in modules] == before
    assert len(attns) == len(modules)
    for a in attns:
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5, rtol=0)
    r = rollout_matrix(attns)
    torch.testing.assert_close(r.sum(-1), torch.ones(r.shape[:-1]), atol=1e-5, rtol=0)
    maps = rollout(model, inputs[0])
    assert maps.shape == (3, SIZE, SIZE) and np.isfinite(maps).all()


def test_unfused_is_restored_after_an_error():
    model = make_model("convat_tiny")
    before = [m.fused_attn for m in attention_modules(model)]
    with pytest.raises(RuntimeError), unfused_attention(model) as modules:
        assert all(not m.fused_attn for m in modules)
        raise RuntimeError("boom")
    assert [m.fused_attn for m in attention_modules(model)] == before


def test_captured_attention_reproduces_the_block_output(inputs):
    """The hooked probabilities are the ones the block uses: recompute attention output from them."""
    model = make_model("convat_tiny")
    attn = model.blocks[0].attn
    seen = {}
    handle = attn.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    attns = attention_maps(model, inputs[0])
    handle.remove()
    x = seen["inp"]
    b, n, c = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    v = qkv[2]
    out = attn.proj((attns[0] @ v).transpose(1, 2).reshape(b, n, c))
    torch.testing.assert_close(out, seen["out"], atol=1e-4, rtol=1e-4)


def test_scores_on_known_maps():
    masks = np.zeros((2, 8, 8), bool)
    masks[:, :2, :2] = True
    inside = np.zeros((2, 8, 8))
    inside[:, 0, 0] = 1.0
    outside = np.zeros((2, 8, 8))
    outside[:, 7, 7] = 1.0
    np.testing.assert_allclose(mass_in_mask(inside, masks), 1.0)
    np.testing.assert_allclose(mass_in_mask(outside, masks), 0.0)
    np.testing.assert_allclose(pointing_game(inside, masks), 1.0)
    np.testing.assert_allclose(pointing_game(outside, masks), 0.0)
    table = faithfulness_table({"perfect": inside, "wrong": outside}, masks)
    assert table.loc["random", "mass_in_mask"] == pytest.approx(4 / 64, abs=0.02)
    assert table.loc["perfect", "lift"] > 10 and table.loc["wrong", "lift"] == 0
    with pytest.raises(ValueError, match="same"):
        mass_in_mask(inside[:, :4], masks)


def test_deletion_curve_starts_at_the_model_probability_and_ends_at_zero_motion(inputs):
    model = make_model("convat_tiny")
    x, target = inputs
    maps = explain_maps(model, x, target, methods=["saliency"], with_rollout=False)
    curves = deletion_table(model, x, target, maps, steps=4)
    with torch.no_grad():
        p0 = torch.softmax(model(torch.as_tensor(x)), -1).numpy()[np.arange(3), target].mean()
        p1 = torch.softmax(model(torch.zeros_like(torch.as_tensor(x))), -1).numpy()[np.arange(3), target].mean()
    for _, g in curves.groupby("method"):
        assert g["probability"].iloc[0] == pytest.approx(p0, abs=1e-5)
        assert g["probability"].iloc[-1] == pytest.approx(p1, abs=1e-5)
    auc = deletion_auc(curves)
    assert set(auc.index) == {"saliency", "random"} and np.isfinite(auc).all()


def test_block_attention_figure_handles_grids_that_do_not_divide_the_input():
    import matplotlib.pyplot as plt

    from convat.explain.plots import plot_block_attention

    fig = plot_block_attention(np.random.rand(SIZE, SIZE, 3), [np.random.rand(7, 7)] * 2,
                               np.random.rand(SIZE, SIZE), np.zeros((SIZE, SIZE), bool))
    assert len(fig.axes) == 3
    plt.close(fig)


@pytest.mark.parametrize("fresh, verdict", [(0.29, "comes from the input"), (0.12, "training moved")])
def test_sentences_follow_the_numbers(fresh, verdict):
    import pandas as pd

    from convat.explain.describe import describe_faithfulness

    index = pd.MultiIndex.from_product([["m"], ["ig", "gradcam", "random", "motion", "untrained"]],
                                       names=["model", "method"])
    table = pd.DataFrame({"mass_in_mask": [0.3, 0.05, 0.1, 0.14, fresh], "pointing_game": [0.5, 0.2, 0.1, 0.8, 0.3]},
                         index=index)
    text = describe_faithfulness(table)
    assert "1 of 2 methods" in text and "*ig*" in text and "3.0×" in text and verdict in text
    assert "on this fold" in text  # one subject and one seed, said in the sentence itself
    two = pd.concat([table, table.rename(index={"m": "n"}, level="model").assign(
        mass_in_mask=lambda t: t["mass_in_mask"] * 1.5)])
    assert "the maps of **n** put the most mass" in describe_faithfulness(two)
    assert describe_faithfulness(two).endswith(": an order of this fold, not a ranking of the models.")
