import numpy as np
import pytest
import timm
import torch
from timm.models.vision_transformer import Block

import convat.models  # noqa: F401  (registers the models with timm)
from convat.models import MODEL_NAMES
from convat.models.convat import ConVAT, kl_of
from convat.models.profile import model_table
from convat.training.loop import TrainConfig, train_model


@pytest.fixture
def one_thread():
    """Training tests run single-threaded: on a loaded machine, two spinning threads are many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("size", [28, 64, 112, 224])
def test_output_shape_for_every_model_and_size(name, size):
    model = timm.create_model(name, num_classes=5, in_chans=3, img_size=size, pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_other_channel_counts_and_forward_features_head(name):
    model = timm.create_model(name, num_classes=4, in_chans=2, img_size=40).eval()
    x = torch.randn(3, 2, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pretrained_weights_are_refused(name):
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model(name, pretrained=True, num_classes=3)


@pytest.mark.parametrize("stem", ["pooled", "strided"])
def test_convat_token_grid_is_about_seven_by_seven_at_every_size(stem):
    for size, grid in [(28, 7), (64, 7 if stem == "pooled" else 8), (112, 7), (224, 7)]:
        model = timm.create_model("convat_tiny", num_classes=3, img_size=size, stem=stem)
        assert model.grid_size == (grid, grid), size
        assert model.tokens(torch.zeros(1, 3, size, size)).shape[1] == grid * grid


def test_convat_blocks_are_plain_timm_blocks():
    model = timm.create_model("convat_small", num_classes=3, img_size=64)
    assert len(model.blocks) > 0 and all(type(b) is Block for b in model.blocks)


def test_bottleneck_is_stochastic_in_training_and_deterministic_in_eval():
    model = timm.create_model("convat_tiny", num_classes=3, img_size=64)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    model.head_drop.p = 0.0  # isolate the bottleneck's sampling from dropout
    for block in model.blocks:
        block.attn.proj_drop.p = block.mlp.drop1.p = block.mlp.drop2.p = 0.0
    assert not torch.allclose(model(x), model(x))
    assert model.kl.item() > 0


def test_without_bottleneck_training_is_deterministic_and_kl_is_zero():
    model = timm.create_model("convat_tiny", num_classes=3, img_size=64, variational=False, drop_rate=0.0)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    torch.testing.assert_close(model(x), model(x))
    assert kl_of(model).item() == 0.0
    assert kl_of(timm.create_model("ststnet", num_classes=3)).item() == 0.0


def _epoch_losses(beta: float, x: np.ndarray, y: np.ndarray, **overrides) -> tuple[list[float], list[float]]:
    losses, kls = [], []
    config = TrainConfig(model="convat_tiny", epochs=1, batch_size=len(x), lr=0.0, beta=beta, hflip=False,
                         **overrides)
    train_model(x, y, 3, config, on_epoch=lambda e, m, loss: (losses.append(loss), kls.append(kl_of(m).item())))
    return losses, kls


def test_beta_weights_the_kl_term_and_beta_zero_removes_it(one_thread):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3, 28, 28)).astype(np.float32)
    y = np.arange(12) % 3
    # lr = 0 and one full batch: every run makes exactly the same forward pass, so the losses differ only by
    # the beta-weighted KL term.
    (loss0,), (kl,) = _epoch_losses(0.0, x, y)
    (loss1,), _ = _epoch_losses(1.0, x, y)
    (loss2,), _ = _epoch_losses(2.0, x, y)
    assert kl > 1.0
    assert loss1 - loss0 == pytest.approx(kl, rel=1e-4)
    assert loss2 - loss0 == pytest.approx(2 * kl, rel=1e-4)
    assert loss0 < np.log(3) + 1.0  # cross-entropy only: nowhere near the KL's size


def test_short_training_run_on_synthme_lowers_the_loss(one_thread):
    from convat.data.synth import generate
    from convat.loso import standardize
    from convat.preprocess.pipeline import PreprocessConfig, preprocess

    records = generate("quick", n_subjects=3, clips_per_subject=4, size=64)
    x, table = preprocess(records, PreprocessConfig(flow="farneback", size=28), progress=False)
    (x,) = standardize(x)
    classes = sorted(table.label.unique())
    y = table.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    losses: list[float] = []
    config = TrainConfig(model="convat_tiny", epochs=30, batch_size=4, lr=3e-3)
    train_model(x, y, len(classes), config, on_epoch=lambda e, m, loss: losses.append(loss))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_round_trip(tmp_path, name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, img_size=64).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(1)
    other = timm.create_model(name, num_classes=3, img_size=64).eval()
    other.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x))


def test_ststnet_matches_the_paper_at_28_pixels():
    model = timm.create_model("ststnet", num_classes=3, img_size=28)
    assert model.forward_features(torch.zeros(1, 3, 28, 28)).shape == (1, 16, 5, 5)
    # 3 x 3 x 3 convolutions with 3 + 5 + 8 filters, and a 400 -> 3 classifier
    assert sum(p.numel() for p in model.parameters()) == (27 + 1) * 16 + 400 * 3 + 3


def test_model_table_counts_parameters_and_flops():
    table = model_table(["ststnet", "convat_tiny"], img_size=28, latency=False)
    assert table.loc["ststnet", "params"] == sum(
        p.numel() for p in timm.create_model("ststnet", num_classes=3, img_size=28).parameters()
    )
    assert 0 < table.loc["ststnet", "MFLOPs"] < table.loc["convat_tiny", "MFLOPs"]
    assert "cpu_ms" not in table
    timed = model_table(["ststnet"], img_size=28, repeats=2)
    assert timed.loc["ststnet", "cpu_ms"] > 0


def test_convat_rejects_an_unknown_pooling():
    with pytest.raises(ValueError, match="global_pool"):
        ConVAT(global_pool="max")


def test_grouped_cv_scores_a_candidate_on_whole_subjects(one_thread):
    import pandas as pd

    from convat.experiments.selection import dev_selection, grouped_cv

    rng = np.random.default_rng(0)
    labels = np.array(["negative", "positive", "surprise"])[np.arange(16) % 3]
    table = pd.DataFrame({"dataset": "toy", "subject": np.repeat(["a", "b", "c", "d"], 4),
                          "clip": [f"c{i:02d}" for i in range(16)], "label": labels})
    x = rng.normal(size=(16, 3, 28, 28)).astype(np.float32)
    x[:, 0] += np.array([0.0, 2.0, -2.0])[np.arange(16) % 3][:, None, None]  # a class signal in channel u
    result = grouped_cv(x, table, TrainConfig(model="ststnet", epochs=3, batch_size=8, lr=1e-2), n_groups=2)
    assert set(result) == {"UF1", "UAR", "final train loss", "train accuracy"}
    assert 0.0 <= result["UF1"] <= 1.0 and result["final train loss"] > 0
    with pytest.raises(ValueError, match="subjects"):
        grouped_cv(x, table, TrainConfig(model="ststnet", epochs=1), n_groups=5)
    with pytest.raises(ValueError, match="dev_seed"):
        dev_selection({}, dev_seed=0)


def test_architecture_diagram_is_drawn_from_the_model():
    import matplotlib

    matplotlib.use("Agg")
    import timm

    from convat.models.diagram import architecture_table, plot_architecture

    model = timm.create_model("convat_tiny", num_classes=3, img_size=32)
    table = architecture_table(model, 32)
    assert table.index[0] == "input" and table.index[-1] == "head"
    assert table.loc["head", "output shape"] == "3" and table.loc["head", "module"] == "Linear 64→3"
    blocks = [s for s in table.index if s.startswith("attention block")]
    assert len(blocks) == len(model.blocks) and "heads" in table.loc[blocks[0], "module"]
    assert table["params"].sum() <= sum(p.numel() for p in model.parameters())
    wider = architecture_table(timm.create_model("convat_small", num_classes=5, img_size=32), 32)
    assert wider.loc["head", "output shape"] == "5" and len(wider) > len(table)
    fig = plot_architecture(model, 32)
    assert len(fig.axes[0].patches) == len(table)


def test_step_plan_budgets_steps_not_epochs():
    from convat.training.config import TrainConfig, step_plan

    assert step_plan(TrainConfig(epochs=3, batch_size=8), 18) == (3, 3, 9)  # 3 full passes of 3 steps
    assert step_plan(TrainConfig(epochs=3, batch_size=8, steps=7), 18) == (3, 3, 7)  # last pass stops at step 7
    assert step_plan(TrainConfig(epochs=3, batch_size=8, steps=7), 16) == (2, 4, 7)  # same steps, smaller fold
    with pytest.raises(ValueError, match="steps must be at least 1"):
        TrainConfig(steps=0)


def test_fold_fit_measures_the_training_fit_and_an_inert_or_live_bottleneck():
    """A model that memorised its clips fits them (UF1 1); sampling with sigma ~ 0.05 (the initial bottleneck)
    changes no prediction, with sigma ~ 3 it changes some."""
    import numpy as np
    import timm
    import torch

    from convat.training.fit import fold_fit

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(12, 3, 32, 32)).astype("float32")
    model = timm.create_model("convat_tiny", num_classes=3, in_chans=3, img_size=32).eval()
    y = model(torch.as_tensor(x)).argmax(1).numpy()  # labels the model already predicts: a perfect fit
    inert = fold_fit(model, x, y, 3)
    assert inert["fit_accuracy"] == 1.0 and inert["fit_loss"] > 0
    assert inert["sample_agreement"] == 1.0 and 0.0 < inert["sigma"] < 0.1
    bottleneck = next(m for m in model.modules() if hasattr(m, "to_stats"))
    with torch.no_grad():
        bottleneck.to_stats.bias[bottleneck.to_stats.out_features // 2:] = 2.0  # log sigma^2 = 2: sigma ~ 2.7
    live = fold_fit(model, x, y, 3)
    assert live["sigma"] > 1.0 and live["sample_agreement"] < 1.0 and live["kl"] > 0 and inert["kl"] > 0
    plain = fold_fit(timm.create_model("ststnet", num_classes=3, in_chans=3).eval(), x, y, 3)
    assert np.isnan(plain["sigma"]) and np.isnan(plain["sample_agreement"]) and 0 <= plain["fit_accuracy"] <= 1


def test_fit_table_and_its_sentence_name_an_unfit_model():
    import pandas as pd

    from convat.training.fit import FIT_COLUMNS, describe_fit, fit_table

    curves = pd.DataFrame({"fold": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "selected": [False, True] * 2,
                           **{c: [float("nan"), 0.5, float("nan"), 0.6] for c in FIT_COLUMNS}})
    fits = fit_table(curves)
    assert list(fits.index) == ["a", "b"] and list(fits["fit_accuracy"]) == [0.5, 0.6]
    assert "**not** learnt" in describe_fit("m", fits)
    fits["fit_accuracy"] = [0.95, 0.97]
    assert "every fold at least 0.90" in describe_fit("m", fits)
    assert "did not record" in describe_fit("m", fit_table(curves.drop(columns=["fit_accuracy"])))
