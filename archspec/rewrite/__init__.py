"""Graph rewrites on the IR: small pattern -> replacement rules, kept as data and applied to a fixed
point (tinygrad's PatternMatcher style), then written back as a flat spec.

    from archspec import compile_spec
    from archspec.lower.fx import lower
    from archspec.rewrite import FOLD_BN, apply_rewrites, fold_bn_weights, ir_to_spec_yaml

    ir = compile_spec("specs/resnet18.yaml")
    folded, report = apply_rewrites(ir, FOLD_BN)          # ir itself is unchanged
    module = lower(folded)
    module.load_state_dict(fold_bn_weights(trained, ir, folded))
    text = ir_to_spec_yaml(folded)                          # a spec archspec loads again

The rules (`archspec.rewrite.rules`): FOLD_BN, CONVOLUTIONALIZE and STRIP_DROPOUT, or PASSES by
name; a list of rules and lists of rules composes. Everything here but `weights` is torch-free.
"""
from __future__ import annotations

from archspec.rewrite.engine import Change, Pat, Replacement, RewriteReport, Rule, RuleSummary, View, apply_rewrites
from archspec.rewrite.rules import CONVOLUTIONALIZE, FOLD_BN, PASSES, RULES, STRIP_DROPOUT
from archspec.rewrite.spec_yaml import flat_names, flat_state_dict, ir_to_spec_yaml
from archspec.rewrite.weights import convolutionalize_weights, fold_bn_weights, transfer_weights

__all__ = [
    "CONVOLUTIONALIZE",
    "FOLD_BN",
    "PASSES",
    "RULES",
    "STRIP_DROPOUT",
    "Change",
    "Pat",
    "Replacement",
    "RewriteReport",
    "Rule",
    "RuleSummary",
    "View",
    "apply_rewrites",
    "convolutionalize_weights",
    "flat_names",
    "flat_state_dict",
    "fold_bn_weights",
    "ir_to_spec_yaml",
    "transfer_weights",
]
