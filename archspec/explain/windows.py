"""The output size of a sliding window (convolution, pooling) as the course's formula,
floor((n + 2p - f) / s) + 1, with the numbers filled in, per axis; and the notes on 'same' and
'valid' padding, dilation, ceil_mode and the rows a stride leaves out."""
from __future__ import annotations


class WindowEquations:
    """Mixed into the explain context (archspec.explain.context.ExplainContext), whose `line`,
    `identity`, `per_axis` and `set_axis_figure` these use."""

    def window_sizes(self, kernel, stride, padding, dilation, ceil_mode: bool, same_total=None) -> None:
        """One output-size equation per axis (one for both when they agree)."""
        _, height, width = self.in_shapes[0]
        totals = same_total or (None, None)
        values = list(zip((height, width), kernel, stride, padding, dilation, self.out[1:], totals))
        for axis, (n, f, s, p, d, out, total) in self.per_axis(values):
            self.window_axis(axis, n, f, s, p, d, out, ceil_mode, total)

    def window_axis(self, axis: str, n: int, f: int, s: int, p: int, d: int, out: int, ceil_mode: bool, total) -> None:
        msg = self.msg
        span = d * (f - 1) + 1
        if d > 1:
            self.line(msg("dilated", d=d, eq=self.equation(f"{d}·({f} - 1) + 1", span)))
        if total is not None and total % 2:
            pad_expr, padded = f"{total // 2} + {total - total // 2}", total
            formula = "{r}((n + p_before + p_after - f) / s) + 1"
        else:
            pad_expr, padded = f"2·{p if total is None else total // 2}", 2 * p if total is None else total
            formula = "{r}((n + 2p - f) / s) + 1"
        numerator = n + padded - span
        rounding = "ceil" if ceil_mode else "floor"
        expression = f"{rounding}(({n} + {pad_expr} - {span}) / {s}) + 1"
        remainder = numerator % s
        undone = ceil_mode and -(-numerator // s) + 1 != out  # PyTorch's last-window rule
        if undone:
            expression += " - 1"
        eq = self.identity(f"{out} = {expression}")
        self.line(msg("formula_line", label=msg("label.size"), axes=msg(f"axis.{axis}"), formula=formula.format(r=rounding), eq=eq))
        self.set_axis_figure("out", axis, out)
        self._remainder_note(axis, numerator, s, remainder, ceil_mode, undone)

    def _remainder_note(self, axis: str, numerator: int, s: int, remainder: int, ceil_mode: bool, undone: bool) -> None:
        """What happens to the positions a stride does not divide: dropped, or a partial window."""
        msg = self.msg
        if undone:
            self.line(msg("ceil_undone"))
        elif remainder and ceil_mode:
            self.line(msg("ceil_partial", over=s - remainder))
        elif remainder:
            self.line(msg("dropped", num=numerator, s=s, r=remainder, unit=msg(f"unit.{axis}")))
            self.set_axis_figure("dropped", axis, remainder)
        elif ceil_mode:
            self.line(msg("ceil_exact"))

    def padding_note(self, padding_arg, kernel, dilation) -> tuple[int, int] | None:
        """Notes for 'same' / 'valid'; the total padding per axis for 'same'."""
        if padding_arg == "valid":
            self.line(self.msg("valid_padding"))
            return None
        if padding_arg != "same":
            return None
        totals = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        for axis, (total,) in self.per_axis([(t,) for t in totals]):
            if total % 2:
                self.line(self.msg("same_padding_even", total=total, left=total // 2, right=total - total // 2))
            else:
                self.line(self.msg("same_padding", p=total // 2))
        return totals
