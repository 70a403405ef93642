"""The texts of the roofline part of `explain --case depthwise-separable` (why fewer FLOPs is not
less time), one dict per language, merged into `archspec.explain.messages`' catalogue.

Kept apart so that the catalogue file stays small; the keys are the same in both languages.
"""
from __future__ import annotations

EN: dict[str, str] = {
    "lat_title": "time, not FLOPs: the roofline estimate of `archspec report --latency` for the three layers",
    "lat_published": "{device} at {dtype} (NVIDIA's published figures)",
    "lat_measured": "{device} at {dtype} (measured on this machine)",
    "lat_device": "{device}: peak {peak}FLOP/s, memory bandwidth {bandwidth}B/s → ridge point {ridge} FLOP/B",
    "lat_rule": "bytes = (inputs + weights + outputs)·{size} B at {dtype}; intensity = FLOPs / bytes; "
                "above the ridge point compute-bound, below it memory-bound",
    "lat_layer": "{name}: {flops} FLOPs, ({inputs} + {weights} + {outputs})·{size} = {bytes} B → "
                 "{intensity} FLOP/B {cmp} {ridge}: {bound}",
    "lat_time": "  time = max({flops} / peak, {bytes} / bandwidth) = max({compute}, {memory}) = {seconds}",
    "lat_time_fixed": "  time = max({flops} / rate, {bytes} / bandwidth) + fixed cost per op "
                      "= max({compute}, {memory}) + {overhead} = {seconds} (rate and fixed cost: this kind of kernel's, measured)",
    "lat_no_fixed": "(no fixed cost per op is counted, none being published: a real kernel launch takes "
                    "microseconds, more than layers this small)",
    "lat_pair": "depthwise + pointwise: {flops} FLOPs, {bytes} B, {eq}",
    "lat_ratios": "FLOP saving: {plain_flops} / {sep_flops} = {saving}x; "
                  "predicted speed-up: {plain_time} / {sep_time} = {speedup}x",
    "lat_dw_memory": "the depthwise convolution is memory-bound ({intensity} FLOP/B, below the ridge point {ridge}): "
                     "its time is the bytes it moves, not its FLOPs",
    "lat_dw_compute": "the depthwise convolution is compute-bound here ({intensity} FLOP/B, above the ridge point {ridge})",
    "lat_bytes": "depthwise + pointwise move {sep} B against the plain convolution's {plain} B: "
                 "they write the {shape} depthwise output and read it back, which the plain convolution never stores",
    "lat_verdict": "so the {saving}x FLOP saving predicts a {speedup}x speed-up",
    "bound.compute": "compute-bound",
    "bound.memory": "memory-bound",
}

KO: dict[str, str] = {
    "lat_title": "FLOPs가 아니라 시간: `archspec report --latency`의 루프라인(roofline) 추정으로 본 세 레이어",
    "lat_published": "{device}, {dtype} (NVIDIA 공개 수치)",
    "lat_measured": "{device}, {dtype} (이 컴퓨터에서 측정한 수치)",
    "lat_device": "{device}: 최대 {peak}FLOP/s, 메모리 대역폭 {bandwidth}B/s → 리지 포인트 {ridge} FLOP/B",
    "lat_rule": "바이트 = (입력 + 가중치 + 출력)·{size} B ({dtype}); 산술 강도 = FLOPs / 바이트; "
                "리지 포인트보다 높으면 연산 병목, 낮으면 메모리 병목",
    "lat_layer": "{name}: {flops} FLOPs, ({inputs} + {weights} + {outputs})·{size} = {bytes} B → "
                 "{intensity} FLOP/B {cmp} {ridge}: {bound}",
    "lat_time": "  시간 = max({flops} / 최대 연산 속도, {bytes} / 대역폭) = max({compute}, {memory}) = {seconds}",
    "lat_time_fixed": "  시간 = max({flops} / 연산 속도, {bytes} / 대역폭) + 연산당 고정 비용 "
                      "= max({compute}, {memory}) + {overhead} = {seconds} (속도와 고정 비용은 이 종류의 커널을 측정한 값)",
    "lat_no_fixed": "(공개된 수치가 없어 연산당 고정 비용은 넣지 않았습니다: 실제 커널 실행에는 "
                    "마이크로초 단위가 걸려, 이렇게 작은 레이어에서는 그쪽이 더 큽니다)",
    "lat_pair": "깊이별 + 점별: {flops} FLOPs, {bytes} B, {eq}",
    "lat_ratios": "FLOPs 절감: {plain_flops} / {sep_flops} = {saving}배; "
                  "예상 속도 향상: {plain_time} / {sep_time} = {speedup}배",
    "lat_dw_memory": "깊이별 합성곱은 메모리 병목입니다 ({intensity} FLOP/B, 리지 포인트 {ridge}보다 낮음): "
                     "걸리는 시간은 FLOPs가 아니라 옮기는 바이트 수로 정해집니다",
    "lat_dw_compute": "여기서는 깊이별 합성곱이 연산 병목입니다 ({intensity} FLOP/B, 리지 포인트 {ridge}보다 높음)",
    "lat_bytes": "깊이별 + 점별은 {sep} B를 옮기고 일반 합성곱은 {plain} B를 옮깁니다: "
                 "깊이별 출력 {shape}를 메모리에 썼다가 다시 읽는데, 일반 합성곱에는 이 중간 결과가 없습니다",
    "lat_verdict": "그래서 FLOPs는 {saving}배 줄어도 예상 속도 향상은 {speedup}배입니다",
    "bound.compute": "연산 병목(compute-bound)",
    "bound.memory": "메모리 병목(memory-bound)",
}
