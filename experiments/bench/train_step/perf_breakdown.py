#!/usr/bin/env python3
"""Where the time of remoe's training step goes, from a `perf record --call-graph dwarf` profile.

    OMP_NUM_THREADS=2 perf record -F 250 --call-graph dwarf,32768 -o step.data \\
        build/experiments/remoe bench train-step --config B --router topk --steps 3 --warmup 1
    perf script -i step.data --no-inline -F tid,period,sym | python3 perf_breakdown.py

Each sample is put in the category of the innermost frame of its call chain that matches a rule
below (so the Eigen GEMM kernel under the attention kernel counts as attention, under matmul as
matmul), then, where a frame tells, split into forward / backward (a frame of the autograd engine
means backward). Samples taken while building the model (init, file reading) are dropped. OpenMP
worker threads only see their own stack (from the parallel region down): Eigen's parallel GEMM on a
worker counts as matmul; libgomp's own frames (barrier waits, spinning) are "OpenMP wait".
"""
import collections
import re
import sys

# (category, regex on a frame's symbol); the first rule matching the innermost-first frames wins.
RULES = [
    ("setup (not timed)", r"remoe::Transformer::Transformer|init_normal|load_safetensors|load_init|make_relu_sparse|"
                          r"remoe::randn|save_safetensors|Generator|measure_gemm"),
    ("optimizer: AdamW", r"adamw_kernel|AdamW::step"),
    ("optimizer: grad-norm clip", r"clip_grad_norm|sum_squares"),
    ("attention kernel", r"attention_forward|attention_backward|forward_impl|backward_impl|Backward<"),
    ("matmul (Eigen GEMM)", r"remoe::cpu::matmul|cpu::\(anonymous namespace\)::gemm|parallelize_gemm|"
                            r"general_matrix_matrix_product|gebp_kernel|gemm_pack"),
    ("softmax / cross-entropy", r"softmax|cross_entropy|log_softmax|row_stats"),
    ("RMSNorm", r"rms_norm"),
    ("RoPE", r"rope"),
    ("SwiGLU / SiLU", r"swiglu|silu"),
    ("MoE dispatch / index ops", r"index_select|index_add|argsort|masked_select|bincount|topk|gather|scatter|"
                                 r"moe_dispatch|embedding|cpu::index|route_relu|route_topk|\bcat\b|remoe::cat"),
    ("reductions (sum, sum_to, mean)", r"cpu::reduce|remoe::sum|sum_to|remoe::mean|reduce_"),
    ("elementwise (add, mul, cast, copy)", r"cpu::binary|cpu::unary|map2|map1|cpu::cast|copy_strided|contiguous|"
                                           r"cpu::copy|remoe::add|remoe::mul|fill_with|remoe::zeros|remoe::full"),
    ("allocation / page faults", r"malloc|free|aligned_alloc|_int_|mmap|munmap|clear_page|page_fault|"
                                 r"do_anonymous_page|handle_mm_fault|Storage::|unmap_page|memset"),
    ("OpenMP wait / runtime", r"libgomp|^gomp_|GOMP_|do_spin|do_wait|futex"),
]
COMPILED = [(c, re.compile(r)) for c, r in RULES]
BACKWARD = re.compile(r"backprop|run_backward|Tensor::backward")


def classify(frames):
    for f in frames:  # innermost first
        for cat, rx in COMPILED:
            if rx.search(f):
                return cat
    return "other: " + (frames[0] if frames else "?")[:60]


def main():
    per_cat = collections.Counter()
    per_cat_phase = collections.Counter()
    total = 0
    frames, period = [], 1

    def flush():
        nonlocal total
        if not frames:
            return
        cat = classify(frames)
        if cat.startswith("setup"):
            return
        phase = "backward" if any(BACKWARD.search(f) for f in frames) else "forward/other"
        per_cat[cat] += period
        per_cat_phase[(cat, phase)] += period
        total += period

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            frames = []
            continue
        if not line.startswith((" ", "\t")):  # header: "tid period"
            flush()
            frames = []
            parts = line.split()
            period = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
            continue
        sym = line.strip().split(None, 1)
        frames.append(sym[1] if len(sym) > 1 else sym[0])
    flush()
    if total == 0:
        sys.exit("perf_breakdown.py: no samples on stdin")
    print(f"{'category':40s} {'share':>7s} {'of which backward':>18s}")
    for cat, n in per_cat.most_common():
        bw = per_cat_phase[(cat, "backward")]
        print(f"{cat:40s} {100 * n / total:6.1f}% {100 * bw / total:17.1f}%")


if __name__ == "__main__":
    main()
