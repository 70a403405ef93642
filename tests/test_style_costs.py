"""Style transfer: the course's costs against hand computations, tapping by node name, and 20
optimisation steps that lower J."""
import pytest
import torch

from archspec.pipeline import compile
from archspec.style.costs import content_cost, gram_matrix, layer_style_cost, style_cost, total_cost
from archspec.style.transfer import initial_image, tap, transfer

# a_ijk laid out (1, n_C, n_H, n_W): n_C = n_H = n_W = 2
GENERATED = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [-1.0, 2.0]]]])
STYLE = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]]])


# --- the costs, by hand -----------------------------------------------------------------------------
def test_gram_matrix_sums_channel_products_over_positions():
    # G_00 = 1 + 4 + 9 + 16 = 30; G_01 = 1*0 + 2*1 + 3*(-1) + 4*2 = 7; G_11 = 0 + 1 + 1 + 4 = 6
    assert gram_matrix(GENERATED).tolist() == [[30.0, 7.0], [7.0, 6.0]]
    # G_00 = 1 + 0 + 0 + 1 = 2; G_01 = 1 + 0 + 0 + 1 = 2; G_11 = 4
    assert gram_matrix(STYLE).tolist() == [[2.0, 2.0], [2.0, 4.0]]


def test_content_cost_is_half_the_sum_of_squares():
    # G - C: channel 0 [[0, 2], [3, 3]], channel 1 [[-1, 0], [-2, 1]]; squares 0+4+9+9+1+0+4+1 = 28
    assert content_cost(STYLE, GENERATED).item() == 14.0


def test_layer_style_cost_uses_the_courses_normalisation():
    # G^(S) - G^(G) = [[-28, -5], [-5, -2]]: 784 + 25 + 25 + 4 = 838, over (2 * 2 * 2 * 2)^2 = 256
    assert layer_style_cost(STYLE, GENERATED).item() == pytest.approx(838 / 256, rel=1e-7)


def test_layer_style_cost_on_a_non_square_layer():
    # n_C = 1, n_H = 1, n_W = 2: G^(G) = 1 + 4 = 5, G^(S) = 0 + 1 = 1; (1 - 5)^2 = 16 over (2*1*2*1)^2 = 16
    generated, style = torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([[[[0.0, 1.0]]]])
    assert layer_style_cost(style, generated).item() == 1.0


def test_style_cost_sums_weighted_layers_with_default_weight_one():
    style = {"a": STYLE, "b": torch.tensor([[[[0.0, 1.0]]]])}
    generated = {"a": GENERATED, "b": torch.tensor([[[[1.0, 2.0]]]])}
    assert style_cost(style, generated).item() == pytest.approx(838 / 256 + 1.0, rel=1e-7)
    assert style_cost(style, generated, {"b": 0.5}).item() == pytest.approx(838 / 256 + 0.5, rel=1e-7)


def test_total_cost_is_alpha_content_plus_beta_style():
    content_term, style_term = content_cost(STYLE, GENERATED), layer_style_cost(STYLE, GENERATED)
    # 10 * 14 + 40 * 838 / 256 = 140 + 130.9375
    assert total_cost(content_term, style_term, alpha=10, beta=40).item() == pytest.approx(270.9375, rel=1e-7)


def test_costs_refuse_a_batch_of_two():
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        gram_matrix(torch.zeros(2, 2, 2, 2))


# --- tapping a lowered spec ----------------------------------------------------------------------------
TINY = """
name: tiny_style
inputs: {image: [3, 8, 8]}
layers:
  - seq:
      name: features
      index_names: true
      layers:
        - conv: {out: 4, kernel: 3, padding: 1}
        - relu
        - conv: {out: 4, kernel: 3, padding: 1}
        - relu
  - flatten
  - linear: {name: head, out: 2}
"""


@pytest.fixture
def module(tmp_path):
    spec = tmp_path / "tiny_style.yaml"
    spec.write_text(TINY)
    torch.manual_seed(0)
    return compile(spec).module()


def test_tap_returns_what_running_the_layers_by_hand_gives(module):
    x = torch.randn(1, 3, 8, 8)
    tapped = tap(module, ["features.0", "features.1", "features_3"])  # IR ids or fx names
    with torch.no_grad():
        out = tapped(x)
        layers = dict(module.named_modules())
        conv0 = layers["features.0"](x)
        relu1 = torch.relu(conv0)
        relu3 = torch.relu(layers["features.2"](relu1))
    assert set(out) == {"features.0", "features.1", "features_3"}
    # features.0 is overwritten in place by the relu in the lowered module: the tap keeps it whole
    torch.testing.assert_close(out["features.0"], conv0, rtol=0, atol=0)
    torch.testing.assert_close(out["features.1"], relu1, rtol=0, atol=0)
    torch.testing.assert_close(out["features_3"], relu3, rtol=0, atol=0)
    called = {node.target for node in tapped.graph.nodes if node.op == "call_module"}
    assert called == {"features.0", "features.2"}  # nothing past the deepest tap runs
    assert module(x).shape == (1, 2)  # the original module is untouched


def test_tap_names_the_missing_node(module):
    with pytest.raises(KeyError, match="features.9"):
        tap(module, ["features.9"])


# --- the optimisation ----------------------------------------------------------------------------------
def _course_cost(module, image, content, style, alpha, beta):
    """J(G) written out in plain torch from the course's formulas, independently of archspec.style."""
    layers = dict(module.named_modules())
    def features(x):
        relu1 = torch.relu(layers["features.0"](x))
        return relu1, torch.relu(layers["features.2"](relu1))
    def gram(a):
        return torch.einsum("kij,lij->kl", a[0], a[0])
    (c1, _), (s1, s3), (g1, g3) = features(content), features(style), features(image)
    j_content = 0.5 * ((c1 - g1) ** 2).sum()
    j_style = sum(((gram(s) - gram(g)) ** 2).sum() / (2 * s.shape[1] * s.shape[2] * s.shape[3]) ** 2
                  for s, g in ((s1, g1), (s3, g3)))
    return (alpha * j_content + beta * j_style).item()


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.05), ("lbfgs", 0.5)])
def test_twenty_steps_reduce_j(module, optimizer, lr):
    torch.manual_seed(1)
    content, style = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    weights_before = {name: p.clone() for name, p in module.named_parameters()}
    seen = []
    image, costs = transfer(module, content, style, "features.1", ["features.1", "features.3"],
                            alpha=10, beta=40, steps=20, lr=lr, optimizer=optimizer,
                            callback=lambda step, cost, image: seen.append(step))
    assert len(costs) == 20 and seen == list(range(20))
    with torch.no_grad():
        start = _course_cost(module, initial_image(content, "noise"), content, style, 10, 40)
        end = _course_cost(module, image, content, style, 10, 40)
    assert costs[0] == pytest.approx(start, rel=1e-5)
    assert end < start and costs[-1] < costs[0]
    for name, p in module.named_parameters():  # weights frozen, and handed back trainable
        assert torch.equal(p, weights_before[name]) and p.requires_grad
    assert module.training


def test_starting_from_the_content_image_leaves_only_the_style_term(module):
    torch.manual_seed(2)
    content, style = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    _, costs = transfer(module, content, style, "features.1", ["features.3"], alpha=10, beta=40,
                        steps=1, lr=0.01, init="content")
    with torch.no_grad():
        relu3 = lambda x: tap(module, ["features.3"])(x)["features.3"]
        expected = 40 * layer_style_cost(relu3(style), relu3(content)).item()
    assert costs[0] == pytest.approx(expected, rel=1e-5)
