# reference/make_parity.py: writes the PyTorch parity fixtures the C++ tests compare against.
# Per case: config.json, model.safetensors (initial weights) and expected.safetensors (logits, loss, every
# gradient, the loop regularizer's value when on, MoR loss parts and routing, and a 10-step AdamW run; and the
# logits, loss, gradients and routing of the same batch in bf16, by recur's rule and under torch.autocast).
# Usage: make_parity.py --out DIR [--cases tiny_gqa,cycle]
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (CONFIG_DEFAULTS, Model, clip_grad_norm, configure_optimizer, init_weights,  # noqa: E402
                   loop_regularizer, lr_at, make_config, n_unique_layers, set_precision)
from safetensors_io import load_file, save_file  # noqa: E402

INIT_SEED = 1234
DATA_SEED = 5678
IGNORED_FRACTION = 0.1
N_STEPS = 10
# grad_clip 2.6 (not 1.0, where every step clips) so each case has clipped and unclipped steps, and no step's
# norm lies within 2% of the threshold (a float32 engine must take the same branch).
OPTIM = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=2.6, schedule="cosine",
             warmup_steps=3, total_steps=N_STEPS, min_lr_ratio=0.1, decay_frac=0.2)
# per-case changes to OPTIM (written to the metadata like the rest), where a norm of OPTIM's run lies near the clip
OPTIM_OVERRIDES = {"mor_expert": dict(grad_clip=2.4), "mor_expert_aux_router": dict(grad_clip=2.4)}

SHARED = dict(d_model=64, n_heads=4, n_kv_heads=4, d_ff=128, max_seq_len=32)
INJECT = dict(SHARED, n_kv_heads=2, n_layers=8, prelude=1, loop_block=2, loop_count=3, coda=1)
MOR = dict(SHARED, n_kv_heads=2, n_layers=8, sharing="middle_cycle", n_recursions=3)
# keys added after the first fixtures; written to config.json only when set, so older fixtures stay unchanged
LATER_KEYS = ("input_injection", "loop_reg_k", "loop_reg_lambda", "mor_routing", "mor_router", "mor_gate",
              "mor_alpha", "mor_capacity", "mor_aux_loss", "mor_balance_loss", "mor_z_loss", "mor_kv_sharing",
              "mor_aux_router")
# token-choice loss-free balancing bias, fixed for the whole case (also during the AdamW run); it is not a
# parameter, so it goes into expected.safetensors' metadata as "mor_bias". Router logits start with std ~3e-3
# (a bias of 0.05 would send every token to depth 1); this one is small enough that every depth occurs.
MOR_BIAS = {"mor_token": [0.0, 0.0005, -0.0005]}
CASES = {  # name -> (config overrides, batch, seq_len)
    "tiny_gqa": (dict(vocab_size=256, d_model=64, n_heads=4, n_kv_heads=2, d_ff=176, n_layers=2,
                      max_seq_len=32, tied_embeddings=True), 2, 16),
    "untied_mha": (dict(vocab_size=256, d_model=48, n_heads=3, n_kv_heads=3, d_ff=128, n_layers=3,
                        max_seq_len=32, tied_embeddings=False), 3, 11),
    "cycle": (dict(SHARED, n_layers=6, sharing="cycle", n_recursions=3), 2, 12),
    "sequence": (dict(SHARED, n_layers=6, sharing="sequence", n_recursions=3), 2, 12),
    "middle_cycle": (dict(SHARED, n_layers=8, sharing="middle_cycle", n_recursions=3), 2, 12),
    "middle_sequence": (dict(SHARED, n_layers=8, sharing="middle_sequence", n_recursions=3), 2, 12),
    "middle_loop": (dict(SHARED, n_layers=8, prelude=1, loop_block=2, loop_count=3, coda=1), 2, 12),
    "inject_add": (dict(INJECT, input_injection="add"), 2, 12),
    "inject_concat": (dict(INJECT, input_injection="concat"), 2, 12),
    "loop_reg": (dict(SHARED, n_layers=6, loop_reg_k=2, loop_reg_lambda=0.5), 2, 12),
    "mor_expert": (dict(MOR, mor_routing="expert"), 2, 12),
    "mor_expert_mlp_tanh": (dict(SHARED, n_kv_heads=2, n_layers=6, sharing="cycle", n_recursions=3,
                                 mor_routing="expert", mor_router="mlp", mor_gate="tanh"), 2, 10),
    "mor_expert_kv_share": (dict(MOR, mor_routing="expert", mor_kv_sharing=True), 2, 12),
    # loss_aux is the auxiliary router's BCE (on detached h); the main router gets no BCE gradient
    "mor_expert_aux_router": (dict(MOR, mor_routing="expert", mor_aux_router=True), 2, 12),
    "mor_token": (dict(MOR, mor_routing="token"), 2, 12),
}


def random_batch(gen, vocab, batch, seq, ignored):
    tokens = torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int32)
    targets = torch.randint(0, vocab, (batch, seq), generator=gen, dtype=torch.int32)
    if ignored:  # a fixed ~10% of positions, at least one, get target -1
        n_ignored = max(1, round(IGNORED_FRACTION * batch * seq))
        positions = torch.randperm(batch * seq, generator=gen)[:n_ignored]
        targets.view(-1)[positions] = -1
    return tokens, targets


def check_finite(name, t):
    if not torch.isfinite(t).all():
        raise RuntimeError(f"{name} has non-finite values")


def logits_without_injection(cfg, tensors, tokens):
    """Logits of the same weights with input_injection 'none' (the loop adapter, if any, left out)."""
    model = Model(dict(cfg, input_injection="none"))
    with torch.no_grad():
        for pname, p in model.named_tensors().items():
            p.copy_(tensors[pname])
        return model(tokens)[0]


def check_injection(name, cfg, initial, final, tokens, logits):
    """Fails unless the fixture catches an engine that skips the injection."""
    if cfg["input_injection"] == "add" and torch.allclose(logits, logits_without_injection(cfg, initial, tokens)):
        raise RuntimeError(f"{name}: logits equal those without input injection")
    if cfg["input_injection"] == "concat":
        # W = [I | 0] at init makes the first forward exactly the plain loop; the training run must not be
        if not torch.equal(logits, logits_without_injection(cfg, initial, tokens)):
            raise RuntimeError(f"{name}: the loop adapter's init [I | 0] is not the identity on h")
    model = Model(cfg)
    with torch.no_grad():
        for pname, p in model.named_tensors().items():
            p.copy_(final[pname])
        trained = model(tokens)[0]
    if torch.allclose(trained, logits_without_injection(cfg, final, tokens)):
        raise RuntimeError(f"{name}: after training, logits equal those without input injection")


def check_mor_routing(name, cfg, depth):
    """Fails unless some tokens skip recursion steps; token-choice must use every depth (both update rules)."""
    nr = cfg["n_recursions"]
    counts = torch.bincount(depth.flatten(), minlength=nr)
    if counts[nr - 1] == depth.numel():
        raise RuntimeError(f"{name}: every token runs all {nr} recursions; the fixture tests no routing")
    if cfg["mor_routing"] == "token" and not (counts > 0).all():
        raise RuntimeError(f"{name}: tokens per depth {counts.tolist()}; every depth must occur")


def bf16_forward_backward(name, cfg, initial, tokens, targets, autocast):
    """One forward/backward of the initial weights in bf16: recur's rule (set_precision('bf16'), prefix 'bf16.')
    or PyTorch's torch.autocast bf16 ('autocast.'). Logits, loss, every gradient and, for MoR, the routing."""
    model = Model(cfg)
    with torch.no_grad():
        for pname, p in model.named_tensors().items():
            p.copy_(initial[pname])
    if name in MOR_BIAS:
        model.mor_bias.copy_(torch.tensor(MOR_BIAS[name]))
    set_precision("f32" if autocast else "bf16")
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits, loss, stats = model(tokens, targets, return_stats=True)
        loss.backward()
    finally:
        set_precision("f32")
    prefix = "autocast." if autocast else "bf16."
    out = {prefix + "logits": logits.detach().float(), prefix + "loss": loss.detach().float().reshape(1)}
    for pname, p in model.named_tensors().items():
        out[prefix + "grad." + pname] = p.grad.detach().clone()
    if "depth" in stats:
        out[prefix + "mor_depth"] = stats["depth"].to(torch.int32)
    return out


def bf16_results(name, cfg, initial, tokens, targets):
    """Both bf16 forms; fails where they route a token differently (a router-score gap within bf16 rounding
    would make the comparison of the two depend on it)."""
    out = bf16_forward_backward(name, cfg, initial, tokens, targets, autocast=False)
    out.update(bf16_forward_backward(name, cfg, initial, tokens, targets, autocast=True))
    if "bf16.mor_depth" in out and not torch.equal(out["bf16.mor_depth"], out["autocast.mor_depth"]):
        raise RuntimeError(f"{name}: recur's bf16 rule and autocast route differently; change the case's data")
    return out


def adamw_run(model, o, batches):
    """Trains model in place, one AdamW step per (tokens, targets) batch. Returns per step the loss
    (cross-entropy + loop regularizer or MoR losses), the pre-clip gradient norm, the lr and, for MoR, the
    routing (depth (B, T), margin)."""
    opt = configure_optimizer(model, o["lr"], (o["beta1"], o["beta2"]), o["eps"], o["weight_decay"])
    step_loss, step_norm, step_lr, step_routing = [], [], [], []
    for step, (x, y) in enumerate(batches):
        lr = lr_at(step, o["schedule"], o["lr"], o["warmup_steps"], o["total_steps"], o["min_lr_ratio"],
                   o["decay_frac"])
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        _, loss_s, stats_s = model(x, y, return_stats=True)
        loss_s.backward()
        norm = clip_grad_norm(model, o["grad_clip"])
        opt.step()
        step_loss.append(loss_s.item())
        step_norm.append(norm)
        step_lr.append(lr)
        if "depth" in stats_s:
            step_routing.append((stats_s["depth"], stats_s["margin"]))
    return step_loss, step_norm, step_lr, step_routing


def check_routing_in_float64(name, cfg, initial, tokens, o, batches, depths):
    """Fails unless the same case in float64 routes every token as float32 did, in the first forward and in each
    AdamW step: a routing decision close enough to a tie to flip with rounding would make the fixture depend on
    the engine's arithmetic."""
    model = Model(cfg).double()
    with torch.no_grad():
        for pname, p in model.named_tensors().items():
            p.copy_(initial[pname])
    if name in MOR_BIAS:
        model.mor_bias.copy_(torch.tensor(MOR_BIAS[name]))
    with torch.no_grad():
        routed = [model(tokens, return_stats=True)[2]["depth"]]
    routed += [depth for depth, _ in adamw_run(model, o, batches)[3]]
    for step, (a, b) in enumerate(zip(depths, routed)):
        if not torch.equal(a, b):
            raise RuntimeError(f"{name}: float64 routes differently from float32 at forward {step} (0: the first "
                               f"batch, then the AdamW steps); change the case's data or optimizer settings")


def make_case(name, out_dir):
    overrides, batch, seq = CASES[name]
    cfg = make_config(**overrides)
    model = Model(cfg)
    init_weights(model, INIT_SEED)
    mor = cfg["mor_routing"] != "none"
    if name in MOR_BIAS:
        model.mor_bias.copy_(torch.tensor(MOR_BIAS[name]))
    initial = {k: v.detach().clone() for k, v in model.named_tensors().items()}
    gen = torch.Generator().manual_seed(DATA_SEED)

    # one forward/backward on a batch with ignored targets
    tokens, targets = random_batch(gen, cfg["vocab_size"], batch, seq, ignored=True)
    logits, loss, stats = model(tokens, targets, return_stats=True)
    model.zero_grad(set_to_none=True)
    loss.backward()
    expected = {"tokens": tokens, "targets": targets, "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    reg = 0.0
    if cfg["loop_reg_k"] > 0:  # loss is cross-entropy + reg; reg alone lets the C++ test check it apart
        reg = loop_regularizer(model).detach()
        expected["loop_reg"] = reg.reshape(1)
    if mor:  # loss = loss_ce + loss_aux + loss_z; routing as counts per step and each token's last step
        for part in ("loss_ce", "loss_aux", "loss_z"):
            expected[part] = stats[part].detach().reshape(1)
        for r, rows in enumerate(stats["selected"]):
            expected[f"mor_selected_step{r}"] = torch.tensor([len(sel) for sel in rows], dtype=torch.int32)
        expected["mor_depth"] = stats["depth"].to(torch.int32)
        check_mor_routing(name, cfg, stats["depth"])
    for pname, p in model.named_tensors().items():
        expected["grad." + pname] = p.grad.detach().clone()
    expected.update(bf16_results(name, cfg, initial, tokens, targets))
    if cfg["input_injection"] == "concat":
        d, grad = cfg["d_model"], expected["grad.model.loop_adapter.weight"]
        if not (grad[:, :d].abs().max() > 0 and grad[:, d:].abs().max() > 0):
            raise RuntimeError(f"{name}: the loop adapter's gradient is zero on one half")

    # a short AdamW run from the same initial weights
    with torch.no_grad():
        for pname, p in model.named_tensors().items():
            p.copy_(initial[pname])
    o = dict(OPTIM, **OPTIM_OVERRIDES.get(name, {}))
    batches = [random_batch(gen, cfg["vocab_size"], batch, seq, ignored=False) for _ in range(N_STEPS)]
    step_loss, step_norm, step_lr, step_routing = adamw_run(model, o, batches)
    expected["step_tokens"] = torch.stack([x for x, _ in batches])
    expected["step_targets"] = torch.stack([y for _, y in batches])
    expected["step_loss"] = torch.tensor(step_loss, dtype=torch.float32)
    expected["step_grad_norm"] = torch.tensor(step_norm, dtype=torch.float32)
    expected["step_lr"] = torch.tensor(step_lr, dtype=torch.float32)
    if mor:  # each step's routing, so an engine that drifts into another route is told so directly
        expected["step_mor_depth"] = torch.stack([depth for depth, _ in step_routing]).to(torch.int32)
    for pname, p in model.named_tensors().items():
        expected["final." + pname] = p.detach().clone()
    for tname, t in expected.items():
        if t.is_floating_point():
            check_finite(f"{name}/{tname}", t)
    if cfg["input_injection"] != "none":
        final = {pname: expected["final." + pname] for pname in initial}
        check_injection(name, cfg, initial, final, tokens, expected["logits"])

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump({k: v for k, v in cfg.items() if k not in LATER_KEYS or v != CONFIG_DEFAULTS[k]}, f, indent=2)
        f.write("\n")
    save_file(initial, os.path.join(case_dir, "model.safetensors"))
    metadata = dict(o, batch_size=batch, seq_len=seq)
    if name in MOR_BIAS:
        metadata["mor_bias"] = ",".join(str(b) for b in MOR_BIAS[name])
    save_file(expected, os.path.join(case_dir, "expected.safetensors"), metadata={k: str(v) for k, v in metadata.items()})

    # read back what we wrote: the fixture must round-trip exactly
    back, meta = load_file(os.path.join(case_dir, "expected.safetensors"))
    if list(back) != list(expected) or any(not torch.equal(back[k], expected[k]) for k in expected):
        raise RuntimeError(f"{name}: expected.safetensors does not round-trip")
    if meta["lr"] != str(o["lr"]):
        raise RuntimeError(f"{name}: metadata does not round-trip")

    n_clipped = sum(n > o["grad_clip"] for n in step_norm)
    if not 0 < n_clipped < N_STEPS:
        raise RuntimeError(f"{name}: {n_clipped}/{N_STEPS} steps clipped; change grad_clip to exercise both branches")
    if any(abs(n - o["grad_clip"]) < 0.005 * o["grad_clip"] for n in step_norm):
        raise RuntimeError(f"{name}: a grad norm in {step_norm} is too close to grad_clip {o['grad_clip']}")
    if mor:
        routing = [(stats["depth"], stats["margin"])] + step_routing
        check_routing_in_float64(name, cfg, initial, tokens, o, batches, [depth for depth, _ in routing])
        margin = min(m for _, m in routing)
    n_params = sum(t.numel() for t in initial.values())
    print(f"{name:20s} unique_layers {n_unique_layers(cfg)}/{cfg['n_layers']} params {n_params:7d} "
          f"loss {loss.item():.5f} step_loss {step_loss[0]:.4f}->{step_loss[-1]:.4f} "
          f"grad_norm {min(step_norm):.3f}..{max(step_norm):.3f} clipped {n_clipped}/{N_STEPS}"
          + (f" loop_reg {float(reg):.5f}" if cfg["loop_reg_k"] > 0 else "")
          + (f" aux {stats['loss_aux'].item():.2e} z {stats['loss_z'].item():.2e} tokens per depth "
             f"{torch.bincount(stats['depth'].flatten(), minlength=cfg['n_recursions']).tolist()} "
             f"route margin {margin:.1e}" if mor else ""))
    ce = stats["loss_ce"].item()
    if not math.isclose(ce, math.log(cfg["vocab_size"]), rel_tol=0.05):
        raise RuntimeError(f"{name}: initial cross-entropy {ce} is far from ln(V); init looks wrong")


def main():
    parser = argparse.ArgumentParser(description="write PyTorch parity fixtures for the C++ tests")
    parser.add_argument("--out", required=True, help="output directory, one subdirectory per case")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    args = parser.parse_args()
    names = [c for c in args.cases.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in names:
        make_case(name, args.out)


if __name__ == "__main__":
    main()
