import pytest
import timm
import torch

import convat  # noqa: F401


@pytest.mark.parametrize("name", ["convat_tiny", "convat_small"])
@pytest.mark.parametrize("size", [28, 64, 112, 224])
def test_output_shape(name, size):
    model = timm.create_model(name, num_classes=5, img_size=size).eval()
    assert model(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_bottleneck_is_stochastic_in_training_and_deterministic_in_eval():
    model = timm.create_model("convat_tiny", num_classes=3, img_size=64)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))
    assert model.kl.item() > 0


def test_state_dict_round_trip(tmp_path):
    model = timm.create_model("convat_tiny", num_classes=3, img_size=64).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = timm.create_model("convat_tiny", num_classes=3, img_size=64).eval()
    other.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), other(x))
