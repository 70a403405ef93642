"""`archspec import`: a PyTorch model (the user's own code, named on the command line) -> a spec.

The layers, in order: `target` loads the model; `trace` runs torch.fx on it and records every
node with its shapes; `matching` maps each node to a registry op through that op's `from_torch`
matcher (the ops say what they are in torch; nothing here names an op); `graph` tidies the
matched graph (merges and projections as the spec language writes them); `scopes` rebuilds the
module hierarchy as nested items; `blocks` folds structurally equal modules into parameterised
blocks and `repeat`s; `writer` writes the YAML; `check` runs the verified chain (build, strict
state_dict load, outputs, FLOPs).
"""
