"""The message catalogue of `archspec explain`: one dict per language, nothing else.

Every sentence `explain` prints is a template here, keyed the same in each language. The code
chooses which template and fills in numbers; it never builds language-dependent text itself.
Formulas use the course's symbols (n, p, f, s, n_c_prev, n_c, n_c') in both languages.
"""
from __future__ import annotations

import os

from archspec.errors import ArchspecError
from archspec.explain.detection_messages import EN as DETECTION_EN, KO as DETECTION_KO
from archspec.explain.latency_messages import EN as LATENCY_EN, KO as LATENCY_KO

EN: dict[str, str] = {
    # --- labels --------------------------------------------------------------------------
    "axis.height": "height",
    "axis.width": "width",
    "axis.both": "height, width",
    "unit.height": "row(s)",
    "unit.width": "column(s)",
    "unit.both": "row(s) and column(s)",
    "label.size": "output size",
    "label.params": "parameters",
    "label.macs": "MACs",
    "kind.max": "max",
    "kind.avg": "average",
    "header": "{node} ({op}): {inputs} → {output}",
    "formula_line": "{label} ({axes}) = {formula}: {eq}",
    "figure_line": "{label} = {formula}: {eq}",
    "note": "  ({text})",
    # --- windows: conv and pooling --------------------------------------------------------
    "dilated": "dilation d = {d}: the effective filter size is f = d·(f - 1) + 1: {eq}",
    "same_padding": "padding 'same' (stride 1): p = (f - 1) / 2 = {p} on each side keeps the size",
    "same_padding_even": (
        "padding 'same' with an even filter: total padding f - 1 = {total}, {left} before and {right} after "
        "(asymmetric, as the course says for even f)"
    ),
    "valid_padding": "padding 'valid': p = 0, no padding",
    "dropped": (
        "n + 2p - f = {num} is not a multiple of s = {s}: floor rounds down, and the last {r} {unit} "
        "of the padded input are covered by no window (dropped)"
    ),
    "ceil_partial": (
        "ceil_mode rounds up instead: one more, partial window at the end, which overhangs the padded "
        "input by {over} and uses only what is inside"
    ),
    "ceil_exact": "ceil_mode: the division is exact, so rounding up changes nothing",
    "ceil_undone": "ceil_mode: that extra window would start in the right padding, so PyTorch drops it again (- 1)",
    "pool_stride_default": "no stride given: s = f = {s} (windows do not overlap)",
    "channels_filters": "channels: n_c = {c}, one output channel per filter",
    "channels_groups": "channels: n_c = {c} in {g} groups; each filter sees n_c_prev/groups = {per} input channels",
    "channels_depthwise": (
        "depthwise: one {kh}x{kw} filter per input channel (groups = n_c_prev = {cin}){mult}, n_c = {c}"
    ),
    "multiplier": ", {m} per channel",
    "channels_pool": "channels unchanged: {c} (each channel is pooled on its own)",
    "params_pool": "parameters: none to learn (pooling has only the hyperparameters f and s)",
    # --- parameters ------------------------------------------------------------------------
    "no_bias": "no bias",
    "depthwise_params": "depthwise: each filter sees one channel",
    "shared": "reuses the weights of {module}: no new parameters",
    "frozen": "frozen (trainable: false): its {n} parameters are not trained",
    "bn_params": "parameters = 2·C (a scale γ and a shift β per channel): {eq}",
    "bn_buffers": (
        "buffers = 2·C + 1 (running mean and variance per channel, and the batch counter; saved, not trained): {eq}"
    ),
    "bn_shape": "batch normalisation per channel: shape unchanged ({shape})",
    "params_tensors": "parameters = {names}: {eq}",
    # --- transposed convolution -----------------------------------------------------------
    "transposed_intro": (
        "transposed convolution: makes the input larger; each input value times the filter is placed in "
        "the output, and overlaps are summed"
    ),
    "transposed_macs_note": "each input value is spread over f·f outputs of every filter",
    "transposed_output_padding": (
        "PyTorch gives {out}, not s·n = {target}: output_padding = {need} would give {target} "
        "(the course's 2x2 → 4x4 example with f=3, s=2, p=1 needs output_padding=1 in PyTorch)"
    ),
    "transposed_op_used": "output_padding = {op}: {op} more row(s)/column(s) at the end of the output",
    "transposed_exact": "so the output is exactly s·n = {target}, s times the input",
    # --- linear --------------------------------------------------------------------------
    "linear_shape": "fully connected: every one of the {nout} outputs sees all {nin} inputs",
    # --- shape-only ops ------------------------------------------------------------------
    "flatten_size": "flatten: C·H·W values in one vector: {eq}",
    "concat_channels": "concatenates {k} inputs along the channels: {eq}",
    "concat_dim": "concatenates {k} inputs along dimension {dim}: {eq}",
    "concat_spatial": "height and width stay {hw}",
    "fit_crop": "inputs are first centre-cropped to the smallest size, {hw}",
    "fit_pad": "inputs are first zero-padded to the largest size, {hw}",
    "add": (
        "adds {k} inputs of the same shape {shape} element by element (residual / skip connection): "
        "shape unchanged, no parameters"
    ),
    "mul": "multiplies {inputs} element by element, broadcasting to {shape}",
    "global_pool": "global average pooling: the mean of the H·W positions of each channel: {eq}; {cin} → {cout}",
    "adaptive": "adaptive {kind} pooling to a fixed {size} output whatever the input size: {cin} → {cout}",
    "activation": "elementwise {op}: shape unchanged ({shape}), no parameters",
    "softmax_over": "softmax over dimension {dim}: values become probabilities summing to 1; shape unchanged ({shape})",
    "dropout_rate": "dropout: while training, zeroes each value with probability {p}; shape unchanged ({shape})",
    "drop_path_rate": "stochastic depth: while training, drops the whole branch per sample with probability {p}; shape unchanged",
    "identity": "passes its input through unchanged ({shape})",
    "groupnorm_groups": "group normalisation over {g} groups of channels: shape unchanged ({shape})",
    "layernorm_dims": "layer normalisation over the last {dims} dimension(s): shape unchanged ({shape})",
    "layernorm_channels": (
        "layer normalisation over the {c} channels at each position (channels-last LayerNorm2d): shape unchanged ({shape})"
    ),
    "linear_last_axis": "applied along the last axis ({n} values) at each of the {rows} other positions",
    "param_batch_none": "a learned tensor {stored}, one for all samples (broadcast over the batch): {shape} per sample",
    "param_batch_leading": "a learned tensor {stored} whose leading 1 stands for the batch (broadcast): {shape} per sample",
    "param_batch_expand": "a learned tensor {stored} whose leading 1 is expanded to the batch: {shape} per sample",
    "param_params": "parameters = its elements: {eq}",
    "attention_heads": (
        "self-attention over T = {t} tokens of width d = {d}: {h} heads of d/h = {dh}; every token attends to all T "
        "(params: in_proj 3d·d + 3d for q, k, v and out_proj d·d + d)"
    ),
    "attention_flops_token": "FLOPs per token = 2·(4d² + 2T·d) (projections 4d², Q·Kᵀ and A·V 2T·d): {eq}",
    "window_attention_windows": (
        "shifted-window self-attention on a {h}×{w} map of C = {c} channels (channels last): {windows} windows of "
        "{wh}×{ww} = {n} tokens (padded at the bottom and right to whole windows where needed), cyclic shift "
        "{shift}; {heads} heads of {dh}; each token attends to the N = {n} tokens of its window, plus a learned "
        "relative-position bias"
    ),
    "window_attention_flops_token": "FLOPs per token = 2·(4C² + 2N·C) (qkv and proj 4C², Q·Kᵀ and A·V 2N·C): {eq}",
    "patch_merging_groups": (
        "merges each 2×2 group of positions: {h}×{w}×{c} → {ho}×{wo}×{c4} (concatenated), LayerNorm over {c4}, "
        "then a linear {c4} → {c2} without bias"
    ),
    "partition_attention_groups": "MaxViT {partition} attention on a {h}×{w} map, C = {c}: {groups} groups of {s}×{s} = {n} tokens "
    "{spacing} apart; in each, LayerNorm, {heads} heads of {dh} + relative-position bias, LayerNorm, MLP {c} → {hidden} → {c} (GELU), each added back",
    "matmul_product": "matrix product {a} @ {b} → {shape}: each output sums k products (no parameters)",
    "transpose_dims": "swaps dims {dim0} and {dim1}: {cin} → {cout}, the same values, no parameters",
    "slice_kept": "keeps [{bounds}] of dim {dim}: {cin} → {cout}",
    "select_index": "takes index {index} of dim {dim} and drops that dim: {cin} → {cout}",
    "roll_shift": "shifts by {shifts} along dims {dims} with wrap-around: shape unchanged ({cout})",
    "mean_over": "mean over dims {dims} (keepdim {keepdim}): {cin} → {cout}",
    "lrn_size": "local response normalisation over {size} neighbouring channels: shape unchanged ({shape})",
    "channel_shuffle_groups": "interleaves the {c} channels across {g} groups of {per}: shape unchanged",
    "reshape": "reshape: the same {n} values arranged as {shape}",
    "upsample_scale": "upsampling ({mode}) by {scale}: output size ({axes}) = floor(n·scale): {eq}",
    "upsample_size": "upsampling ({mode}) to {hw}: {cin} → {cout}",
    "upsample_match": "upsampling ({mode}) to the size of {other}, {hw}: {cin} → {cout}",
    "crop": "centre crop: {cin} → {cout}",
    "crop_match": "centre crop to the size of {other}: {cin} → {cout}",
    "pad_size": "output size ({axes}) = n + before + after: {eq}",
    "generic": "{summary}: {cin} → {cout}",
    # --- pairs -----------------------------------------------------------------------------
    "sep_title": "depthwise-separable convolution: '{dw}' (depthwise) + '{pw}' (pointwise 1x1)",
    "sep_cost": "MACs, depthwise + pointwise: {eq}",
    "sep_plain": (
        "a plain {kh}x{kw} convolution {cin} → {cout} on the same input: H_out·W_out·n_c'·n_c_prev·f·f: {eq}"
    ),
    "sep_ratio": "ratio = {sep} / {plain} = {ratio} = {course}: {formula} = {value} ({times}x fewer MACs)",
    "bottleneck_title": "bottleneck layer: the 1x1 conv '{b}' reduces {cin} → {cmid} channels before this {kh}x{kw} conv",
    "bottleneck_direct": "a direct {kh}x{kw} conv from the {cin} channels: H_out·W_out·n_c·n_c_prev·f·f: {eq}",
    "bottleneck_with": "with the bottleneck, {b} + {node}: {eq}",
    "bottleneck_ratio": "{direct} / {total} = {ratio}x fewer MACs",
    # --- cases -------------------------------------------------------------------------------
    "case.inception-bottleneck": "Inception's 1x1 bottleneck: 28x28x192 → 32 filters 5x5, direct vs through 16 channels",
    "case.depthwise-separable": "depthwise-separable vs plain convolution: 6x6x3, f=3, 5 filters; ratio 1/n_c' + 1/f²",
    "case.lenet5": "the course's LeNet-5 table: activation shape, activation size and parameters per layer",
    "case.conv-output-size": "output size floor((n + 2p - f) / s) + 1 on worked examples (valid, same, stride, dropped)",
    "case.transposed-conv": "transposed convolution 2x2 → 4x4 with f=3, s=2, p=1, and PyTorch's output_padding",
    "approx": "about {value}",
    "inc_title": "Inception: the cost of a 5x5 convolution, and the 1x1 bottleneck layer",
    "inc_setup": "input {h}x{w}x{c}, {out} filters {k}x{k} with 'same' padding → {h}x{w}x{out}",
    "inc_direct": "direct {k}x{k} convolution: {macs} MACs ({approx})",
    "inc_bottleneck": "1x1 bottleneck to {mid} channels, then {k}x{k}: {eq} MACs ({approx})",
    "inc_ratio": "the bottleneck needs {ratio}x fewer multiplications (1/{ratio} of the cost)",
    "sep_case_title": "MobileNet's depthwise-separable convolution vs a plain convolution",
    "sep_case_setup": "input {h}x{w}x{c}, f = {k}, n_c' = {out} filters, valid padding → {ho}x{wo}x{out}",
    "sep_case_plain": "plain convolution: {eq}",
    "sep_case_dw": "depthwise: (f·f)·(n_out·n_out·n_c) = {eq}",
    "sep_case_pw": "pointwise: (1·1·n_c)·(n_out·n_out·n_c') = {eq}",
    "sep_case_sum": "depthwise + pointwise: {eq}",
    "sep_case_ratio": "ratio: {sep} / {plain} = {ratio} = 1/n_c' + 1/f² = {formula}",
    "lenet_title": "LeNet-5 (course table) from {spec}",
    "lenet_columns": ["layer", "activation shape", "activation size", "# parameters"],
    "lenet_input": "input",
    "lenet_note": "ReLU and flatten change no shape and have no parameters: they are left out, as in the course",
    "lenet_total": "total: {params} parameters",
    "lenet_formulas": "parameters per weighted layer:",
    "size_title": "output size of a convolution or pooling: floor((n + 2p - f) / s) + 1",
    "size_example": "{n}x{n} input, {f}x{f} filter, p = {p}, s = {s} → {out}x{out}",
    "size_example_pool": "{n}x{n}x{c} input, max pooling f = {f}, s = {s} → {out}x{out}x{c}",
    "size_same": "p = (f - 1) / 2 = {p} keeps the size: a 'same' convolution",
    "tconv_title": "transposed convolution: output size (n - 1)·s - 2p + f + output_padding",
    "tconv_default": "{n}x{n} input, f = {f}, s = {s}, p = {p}, output_padding = 0 → {out}x{out}",
    "tconv_course": "with output_padding = {op} → {out}x{out}, the course's 2x2 → 4x4",
    **DETECTION_EN, **LATENCY_EN,
}

KO: dict[str, str] = {
    "axis.height": "높이",
    "axis.width": "너비",
    "axis.both": "높이, 너비",
    "unit.height": "행",
    "unit.width": "열",
    "unit.both": "행과 열",
    "label.size": "출력 크기",
    "label.params": "파라미터 수",
    "label.macs": "연산량 (곱셈-누적)",
    "kind.max": "최대",
    "kind.avg": "평균",
    "header": "{node} ({op}): {inputs} → {output}",
    "formula_line": "{label} ({axes}) = {formula}: {eq}",
    "figure_line": "{label} = {formula}: {eq}",
    "note": "  ({text})",
    "dilated": "팽창(dilation) d = {d}: 실제 필터 크기 f = d·(f - 1) + 1: {eq}",
    "same_padding": "세임(same) 패딩 (스트라이드 1): 양쪽에 p = (f - 1) / 2 = {p}씩 패딩하여 입력 크기를 유지",
    "same_padding_even": (
        "짝수 필터의 세임(same) 패딩: 전체 패딩 f - 1 = {total}, 앞에 {left}, 뒤에 {right} "
        "(강의에서 말한 f가 짝수일 때의 비대칭 패딩)"
    ),
    "valid_padding": "밸리드(valid) 합성곱: p = 0, 패딩 없음",
    "dropped": (
        "n + 2p - f = {num}: s = {s}의 배수가 아니므로 내림(floor); 패딩된 입력의 "
        "마지막 {r}개 {unit}은 어떤 윈도우에도 포함되지 않아 버려짐"
    ),
    "ceil_partial": (
        "ceil_mode는 올림(ceil)을 사용: 끝에 부분 윈도우가 하나 더 생기며, 패딩된 입력 밖으로 {over}만큼 "
        "넘어가고 안쪽 값만 사용"
    ),
    "ceil_exact": "ceil_mode: 나누어떨어지므로 올림해도 결과가 같음",
    "ceil_undone": "ceil_mode: 추가 윈도우가 오른쪽 패딩에서 시작하므로 PyTorch는 이를 다시 제외함 (- 1)",
    "pool_stride_default": "스트라이드를 지정하지 않으면 s = f = {s} (윈도우가 겹치지 않음)",
    "channels_filters": "채널 수: n_c = {c}, 필터 하나당 출력 채널 하나",
    "channels_groups": "채널 수: n_c = {c}, {g}개 그룹; 필터마다 n_c_prev/groups = {per}개 입력 채널만 봄",
    "channels_depthwise": "깊이별(depthwise) 합성곱: 입력 채널마다 {kh}x{kw} 필터 하나 (groups = n_c_prev = {cin}){mult}, n_c = {c}",
    "multiplier": ", 채널당 {m}개",
    "channels_pool": "채널 수는 그대로 {c} (채널마다 따로 풀링)",
    "params_pool": "파라미터 수: 0 (풀링은 하이퍼파라미터 f, s만 있고 학습할 변수가 없음)",
    "no_bias": "편향 없음",
    "depthwise_params": "깊이별: 필터 하나가 채널 하나만 봄",
    "shared": "{module}의 가중치를 공유: 새 파라미터 없음",
    "frozen": "고정됨 (trainable: false): 파라미터 {n}개는 학습되지 않음",
    "bn_params": "파라미터 수 = 2·C (채널마다 스케일 γ와 이동 β): {eq}",
    "bn_buffers": "버퍼 = 2·C + 1 (채널별 이동 평균·분산과 배치 카운터; 저장되지만 학습되지 않음): {eq}",
    "bn_shape": "채널별 배치 정규화: 모양은 그대로 ({shape})",
    "params_tensors": "파라미터 수 = {names}: {eq}",
    "transposed_intro": "전치 합성곱: 작은 입력을 큰 출력으로 바꿈; 입력 값마다 필터를 곱해 출력에 놓고, 겹치는 부분은 더함",
    "transposed_macs_note": "입력 값 하나가 필터마다 f·f개의 출력에 더해짐",
    "transposed_output_padding": (
        "PyTorch의 출력 크기: {out} (s·n = {target}보다 {need} 작음); output_padding = {need} 지정 시 {target} "
        "(강의의 2x2 → 4x4 예시(f=3, s=2, p=1)도 PyTorch에서는 output_padding=1 필요)"
    ),
    "transposed_op_used": "output_padding = {op}: 출력 끝에 행/열을 {op}개 더함",
    "transposed_exact": "따라서 출력은 정확히 s·n = {target}, 입력의 s배",
    "linear_shape": "완전 연결: 출력 {nout}개가 각각 입력 {nin}개 전부와 연결됨",
    "flatten_size": "펼치기(flatten): C·H·W개의 값을 하나의 벡터로: {eq}",
    "concat_channels": "입력 {k}개를 채널 방향으로 연결: {eq}",
    "concat_dim": "입력 {k}개를 {dim}번 차원으로 연결: {eq}",
    "concat_spatial": "높이와 너비는 {hw} 그대로",
    "fit_crop": "먼저 입력을 가장 작은 크기 {hw}로 중앙 크롭",
    "fit_pad": "먼저 입력을 가장 큰 크기 {hw}로 0 패딩",
    "add": "같은 모양 {shape}의 입력 {k}개를 원소별로 더함 (잔류/건너뛰기 연결): 모양은 그대로, 파라미터 없음",
    "mul": "{inputs}을(를) 원소별로 곱함 (브로드캐스팅 → {shape})",
    "global_pool": "전역 평균 풀링: 채널마다 H·W개 위치의 평균: {eq}; {cin} → {cout}",
    "adaptive": "적응형 {kind} 풀링: 입력 크기와 상관없이 출력 크기 {size}: {cin} → {cout}",
    "activation": "원소별 {op} (비선형 활성화): 모양은 그대로 ({shape}), 파라미터 없음",
    "softmax_over": "{dim}번 차원에 대한 softmax: 합이 1인 확률로 바꿈; 모양은 그대로 ({shape})",
    "dropout_rate": "드롭아웃: 학습 중에 각 값을 확률 {p}로 0으로 만듦; 모양은 그대로 ({shape})",
    "drop_path_rate": "확률적 깊이(stochastic depth): 학습 중에 샘플마다 확률 {p}로 가지 전체를 버림; 모양은 그대로",
    "identity": "입력을 그대로 전달 ({shape})",
    "groupnorm_groups": "그룹 정규화: 채널을 {g}개 그룹으로 나눠 정규화; 모양은 그대로 ({shape})",
    "layernorm_dims": "층 정규화: 마지막 {dims}개 차원에 대해 정규화; 모양은 그대로 ({shape})",
    "layernorm_channels": "층 정규화: 위치마다 채널 {c}개에 대해 정규화 (채널 마지막 LayerNorm2d); 모양은 그대로 ({shape})",
    "linear_last_axis": "마지막 축({n}개 값)을 따라, 나머지 {rows}개 위치마다 같은 가중치로 적용",
    "param_batch_none": "학습되는 텐서 {stored}, 모든 샘플이 공유 (배치로 브로드캐스트): 샘플당 {shape}",
    "param_batch_leading": "학습되는 텐서 {stored}, 맨 앞의 1이 배치 자리 (브로드캐스트): 샘플당 {shape}",
    "param_batch_expand": "학습되는 텐서 {stored}, 맨 앞의 1을 배치 크기로 확장: 샘플당 {shape}",
    "param_params": "파라미터 수 = 원소 수: {eq}",
    "attention_heads": (
        "셀프 어텐션: 너비 d = {d}인 토큰 T = {t}개, 헤드 {h}개(헤드당 d/h = {dh}); 토큰마다 T개 전부를 참조 "
        "(파라미터: q, k, v의 in_proj 3d·d + 3d, out_proj d·d + d)"
    ),
    "attention_flops_token": "토큰당 FLOPs = 2·(4d² + 2T·d) (투영 4d², Q·Kᵀ와 A·V 2T·d): {eq}",
    "window_attention_windows": (
        "이동 윈도 셀프 어텐션: 채널 C = {c}개인 {h}×{w} 맵(채널 마지막), {wh}×{ww} = {n}토큰 윈도 {windows}개 "
        "(필요하면 아래와 오른쪽을 윈도 크기의 배수로 패딩), 순환 이동 {shift}; 헤드 {heads}개(헤드당 {dh}); "
        "토큰마다 자기 윈도의 N = {n}개 토큰과 학습된 상대 위치 편향을 참조"
    ),
    "window_attention_flops_token": "토큰당 FLOPs = 2·(4C² + 2N·C) (qkv와 proj 4C², Q·Kᵀ와 A·V 2N·C): {eq}",
    "patch_merging_groups": (
        "2×2 위치를 하나로 합침: {h}×{w}×{c} → {ho}×{wo}×{c4} (이어 붙임), {c4}에 대한 LayerNorm, "
        "편향 없는 선형 {c4} → {c2}"
    ),
    "partition_attention_groups": "MaxViT {partition} 어텐션: 채널 C = {c}개인 {h}×{w} 맵에서 {spacing}칸 간격의 토큰 {s}×{s} = {n}개씩 "
    "그룹 {groups}개; 그룹마다 LayerNorm, 헤드 {heads}개(헤드당 {dh}) + 상대 위치 편향, LayerNorm, MLP {c} → {hidden} → {c} (GELU), 각각 더함",
    "matmul_product": "행렬 곱 {a} @ {b} → {shape}: 출력마다 k개의 곱을 더함 (파라미터 없음)",
    "transpose_dims": "{dim0}번과 {dim1}번 차원을 맞바꿈: {cin} → {cout}, 값은 그대로, 파라미터 없음",
    "slice_kept": "{dim}번 차원의 [{bounds}]만 남김: {cin} → {cout}",
    "select_index": "{dim}번 차원의 {index}번째만 취하고 그 차원을 없앰: {cin} → {cout}",
    "roll_shift": "{dims}번 차원을 따라 {shifts}만큼 순환 이동: 모양은 그대로 ({cout})",
    "mean_over": "{dims}번 차원에 대한 평균 (keepdim {keepdim}): {cin} → {cout}",
    "lrn_size": "인접한 {size}개 채널에 대한 지역 응답 정규화(LRN): 모양은 그대로 ({shape})",
    "channel_shuffle_groups": "채널 {c}개를 {g}개 그룹({per}개씩)에 걸쳐 섞음: 모양은 그대로",
    "reshape": "모양 바꾸기(reshape): 같은 {n}개의 값을 {shape}로 배치",
    "upsample_scale": "업샘플링 ({mode}) {scale}배: 출력 크기 ({axes}) = floor(n·scale): {eq}",
    "upsample_size": "업샘플링 ({mode}), 크기 {hw}로: {cin} → {cout}",
    "upsample_match": "업샘플링 ({mode}), {other}의 크기 {hw}에 맞춤: {cin} → {cout}",
    "crop": "중앙 크롭: {cin} → {cout}",
    "crop_match": "{other}의 크기에 맞춰 중앙 크롭: {cin} → {cout}",
    "pad_size": "출력 크기 ({axes}) = n + 앞 + 뒤: {eq}",
    "generic": "{op}: {cin} → {cout}",
    "sep_title": "깊이별 분리 합성곱: '{dw}' (깊이별, depthwise) + '{pw}' (점별 1x1, pointwise)",
    "sep_cost": "연산량 (곱셈-누적), 깊이별 + 점별: {eq}",
    "sep_plain": "같은 입력에 일반 {kh}x{kw} 합성곱 ({cin} → {cout}): H_out·W_out·n_c'·n_c_prev·f·f: {eq}",
    "sep_ratio": "비율 = {sep} / {plain} = {ratio} = {course}: {formula} = {value} (연산량 {times}배 절약)",
    "bottleneck_title": "병목 레이어: 이 {kh}x{kw} 합성곱 앞의 1x1 합성곱 '{b}'에서 채널 수를 줄임 ({cin} → {cmid})",
    "bottleneck_direct": "{cin}채널에서 바로 {kh}x{kw} 합성곱을 하면: H_out·W_out·n_c·n_c_prev·f·f: {eq}",
    "bottleneck_with": "병목 레이어를 쓰면, {b} + {node}: {eq}",
    "bottleneck_ratio": "{direct} / {total} = 연산량 {ratio}배 절약",
    "case.inception-bottleneck": "인셉션의 1x1 병목 레이어: 28x28x192 → 5x5 필터 32개, 직접 vs 16채널 경유",
    "case.depthwise-separable": "깊이별 분리 합성곱 vs 일반 합성곱: 6x6x3, f=3, 필터 5개; 비율 1/n_c' + 1/f²",
    "case.lenet5": "강의의 LeNet-5 표: 레이어별 활성값 모양, 활성값 크기, 파라미터 수",
    "case.conv-output-size": "출력 크기 floor((n + 2p - f) / s) + 1 예제 (밸리드, 세임, 스트라이드, 버려지는 열)",
    "case.transposed-conv": "전치 합성곱 2x2 → 4x4 (f=3, s=2, p=1)와 PyTorch의 output_padding",
    "approx": "약 {value}",
    "inc_title": "인셉션 네트워크: 5x5 합성곱의 계산 비용과 1x1 병목 레이어",
    "inc_setup": "입력 {h}x{w}x{c}, {k}x{k} 필터 {out}개, 세임 패딩 → {h}x{w}x{out}",
    "inc_direct": "{k}x{k} 합성곱을 바로 하면: 연산량 {macs} ({approx})",
    "inc_bottleneck": "1x1 병목 레이어로 {mid}채널로 줄인 뒤 {k}x{k}: 연산량 {eq} ({approx})",
    "inc_ratio": "병목 레이어를 쓰면 곱셈이 {ratio}배 적음 (비용이 1/{ratio})",
    "sep_case_title": "MobileNet의 깊이별 분리 합성곱 vs 일반 합성곱",
    "sep_case_setup": "입력 {h}x{w}x{c}, f = {k}, 필터 n_c' = {out}개, 밸리드 패딩 → {ho}x{wo}x{out}",
    "sep_case_plain": "일반 합성곱: {eq}",
    "sep_case_dw": "깊이별(depthwise): (f·f)·(n_out·n_out·n_c) = {eq}",
    "sep_case_pw": "점별(pointwise): (1·1·n_c)·(n_out·n_out·n_c') = {eq}",
    "sep_case_sum": "깊이별 + 점별: {eq}",
    "sep_case_ratio": "비율: {sep} / {plain} = {ratio} = 1/n_c' + 1/f² = {formula}",
    "lenet_title": "LeNet-5 (강의의 표), {spec}에서 계산",
    "lenet_columns": ["레이어", "활성값 모양", "활성값 크기", "파라미터 수"],
    "lenet_input": "입력",
    "lenet_note": "ReLU와 flatten은 모양을 바꾸지 않고 파라미터도 없어서 강의처럼 표에서 뺌",
    "lenet_total": "합계: 파라미터 {params}개",
    "lenet_formulas": "가중치가 있는 레이어의 파라미터 수:",
    "size_title": "합성곱·풀링의 출력 크기: floor((n + 2p - f) / s) + 1",
    "size_example": "입력 {n}x{n}, 필터 {f}x{f}, p = {p}, s = {s} → {out}x{out}",
    "size_example_pool": "입력 {n}x{n}x{c}, 최대 풀링 f = {f}, s = {s} → {out}x{out}x{c}",
    "size_same": "p = (f - 1) / 2 = {p}: 입력 크기를 유지하는 세임(same) 합성곱",
    "tconv_title": "전치 합성곱의 출력 크기: (n - 1)·s - 2p + f + output_padding",
    "tconv_default": "입력 {n}x{n}, f = {f}, s = {s}, p = {p}, output_padding = 0 → {out}x{out}",
    "tconv_course": "output_padding = {op} 지정 시 → {out}x{out}, 강의의 2x2 → 4x4",
    **DETECTION_KO, **LATENCY_KO,
}

CATALOGUE: dict[str, dict] = {"en": EN, "ko": KO}
LANGUAGES = tuple(CATALOGUE)


def default_lang(environ: dict[str, str] | None = None) -> str:
    """`ko` when the locale is Korean, else `en`. The locale is the first non-empty of LC_ALL,
    LC_MESSAGES and LANG (POSIX precedence), e.g. `ko_KR.UTF-8`."""
    environ = os.environ if environ is None else environ
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(variable)
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


def check_lang(lang: str | None) -> str:
    if lang is None:
        return default_lang()
    if lang not in CATALOGUE:
        raise ArchspecError(f"unknown language '{lang}'; choose one of: {', '.join(LANGUAGES)}")
    return lang


class Messages:
    """msg(key, **numbers) -> the sentence in this language."""

    def __init__(self, lang: str):
        self.lang = check_lang(lang)
        self.table = CATALOGUE[self.lang]

    def __call__(self, key: str, **values) -> str:
        template = self.table[key]
        return template.format(**values) if values else template

    def raw(self, key: str):
        return self.table[key]

    def approx(self, n: int) -> str:
        """A rough size the way the course says it: '120.4 million' / '약 1.2억', '약 1,244만'."""
        if self.lang == "ko":
            if n >= 100_000_000:
                return self("approx", value=f"{n / 100_000_000:.1f}억")
            if n >= 10_000:
                return self("approx", value=f"{round(n / 10_000):,}만")
            return self("approx", value=f"{n:,}")
        if n >= 1_000_000:
            return self("approx", value=f"{n / 1_000_000:.1f} million")
        return self("approx", value=f"{n:,}")


def num(n: int | float) -> str:
    """A result with thousands separators (the course writes 120,422,400)."""
    return f"{n:,}" if isinstance(n, int) else f"{n:,.3f}"
