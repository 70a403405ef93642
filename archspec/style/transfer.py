"""Style transfer on any lowered spec: tap activations by node name, then optimise G's pixels.

`tap` edits a copy of the module's torch.fx graph so that `forward` returns
{node name: activation} for the requested nodes, and drops everything past the deepest one.
fx rather than forward hooks, because function nodes (a relu, an add) have no module to hook.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.fx as fx

from archspec.lower.fx import python_name  # the one rule turning an IR node id into an fx name
from archspec.style.costs import content_cost, gram_matrix, layer_style_cost_from_gram, total_cost


def _find_node(graph: fx.Graph, name: str) -> fx.Node:
    """The fx node for an IR node id (`features.10`) or an fx node name (`features_10`)."""
    by_name = {node.name: node for node in graph.nodes if node.op != "output"}
    for candidate in (name, python_name(name)):
        if candidate in by_name:
            return by_name[candidate]
    raise KeyError(f"no node {name!r} in the module; its nodes are: {', '.join(by_name)}")


def tap(module: fx.GraphModule, names: Iterable[str]) -> fx.GraphModule:
    """A GraphModule sharing `module`'s submodules whose forward returns {name: activation}.

    Each tapped value is cloned where it is computed: the lowered module may overwrite a value in
    place in its next op (a relu after a conv), and the tap must return the value before that."""
    names = list(dict.fromkeys(names))
    graph = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    graph.graph_copy(module.graph, copies)
    taps = {}
    for name in names:
        node = copies[_find_node(module.graph, name)]
        with graph.inserting_after(node):
            taps[name] = graph.create_node("call_method", "clone", (node,), name=f"{node.name}_tap")
    graph.output(taps)
    tapped = fx.GraphModule(module, graph, class_name=f"{type(module).__name__}Taps")
    tapped.graph.eliminate_dead_code()  # the layers past the deepest tap are never run
    tapped.graph.lint()
    tapped.delete_all_unused_submodules()
    tapped.recompile()
    return tapped


@contextlib.contextmanager
def _frozen(module: torch.nn.Module):
    """Eval mode and no weight gradients while inside; the caller's flags come back afterwards."""
    was_training = {layer: layer.training for layer in module.modules()}
    needed_grad = {parameter: parameter.requires_grad for parameter in module.parameters()}
    module.eval()
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for layer, training in was_training.items():
            layer.training = training
        for parameter, flag in needed_grad.items():
            parameter.requires_grad_(flag)


def initial_image(content: torch.Tensor, init: str, seed: int = 0) -> torch.Tensor:
    """G's starting pixels: "noise" is uniform white noise over the content image's value range
    (the course starts from noise); "content" starts from a copy of the content image."""
    if init == "content":
        return content.detach().clone()
    if init != "noise":
        raise ValueError(f"init must be 'noise' or 'content', not {init!r}")
    generator = torch.Generator(device=content.device).manual_seed(seed)
    noise = torch.rand(content.shape, generator=generator, device=content.device, dtype=content.dtype)
    low, high = content.min().item(), content.max().item()
    return low + (high - low) * noise


def _optimiser(image: torch.Tensor, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam([image], lr=lr)
    if name == "lbfgs":
        return torch.optim.LBFGS([image], lr=lr, max_iter=1)  # one L-BFGS iteration per step
    raise ValueError(f"optimizer must be 'adam' or 'lbfgs', not {name!r}")


@dataclass(frozen=True)
class Targets:
    """What G is compared with: the content activation and the style Gram matrices (computed once)."""

    content_node: str
    content: torch.Tensor
    grams: dict[str, torch.Tensor]
    style_weights: dict[str, float]


def targets(tapped: fx.GraphModule, content: torch.Tensor, style: torch.Tensor, content_node: str,
            style_nodes: Sequence[str], style_weights: dict[str, float] | None = None) -> Targets:
    with torch.no_grad():
        content_features = tapped(content)[content_node]
        style_features = tapped(style)
    grams = {name: gram_matrix(style_features[name]) for name in style_nodes}
    return Targets(content_node, content_features, grams, style_weights or {})


def cost_terms(tapped: fx.GraphModule, image: torch.Tensor, goal: Targets, alpha: float, beta: float):
    """(J, J_content, J_style) of one image, as tensors (J differentiable in the image)."""
    features = tapped(image)
    styles = [goal.style_weights.get(name, 1.0) * layer_style_cost_from_gram(gram, features[name])
              for name, gram in goal.grams.items()]
    j_content, j_style = content_cost(goal.content, features[goal.content_node]), torch.stack(styles).sum()
    return total_cost(j_content, j_style, alpha, beta), j_content, j_style


def transfer(
    module: fx.GraphModule,
    content: torch.Tensor,
    style: torch.Tensor,
    content_node: str,
    style_nodes: Sequence[str],
    alpha: float,
    beta: float,
    steps: int,
    lr: float,
    init: str = "noise",
    callback: Callable[[int, tuple[float, float, float], torch.Tensor], None] | None = None,
    *,
    style_weights: dict[str, float] | None = None,
    optimizer: str = "adam",
    seed: int = 0,
) -> tuple[torch.Tensor, list[float]]:
    """Minimise J(G) = alpha J_content(C, G) + beta J_style(S, G) over G's pixels (see `costs`).

    `content` and `style` are single images (1, C, H, W) in the module's input layout. The network
    runs in eval mode with its weights frozen (restored afterwards). Returns the generated image and
    J at every step, measured before that step's update; `callback(step, (J, J_content, J_style),
    image)` sees each step's terms (measured before its update) and the image after it."""
    tapped = tap(module, [content_node, *style_nodes])
    with _frozen(tapped):
        goal = targets(tapped, content, style, content_node, style_nodes, style_weights)
    image = initial_image(content, init, seed).requires_grad_(True)
    solver = _optimiser(image, optimizer, lr)
    costs: list[float] = []
    measured: list[tuple[float, float, float]] = []  # the first evaluation of each step

    def cost() -> torch.Tensor:
        solver.zero_grad()
        terms = cost_terms(tapped, image, goal, alpha, beta)
        terms[0].backward()
        if len(measured) == len(costs):
            measured.append(tuple(float(term.detach()) for term in terms))
        return terms[0]

    with _frozen(tapped):
        for step in range(steps):
            value = solver.step(cost) if optimizer == "lbfgs" else _adam_step(solver, cost)
            costs.append(float(value.detach()))
            if callback is not None:
                callback(step, measured[-1], image.detach())
    return image.detach(), costs


def _adam_step(solver: torch.optim.Optimizer, cost: Callable[[], torch.Tensor]) -> torch.Tensor:
    value = cost()
    solver.step()
    return value.detach()
