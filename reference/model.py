# reference/model.py: the PyTorch oracle for recur's model (docs/design.md, "The model"), written for clarity, not speed.
# Llama-style decoder with parameter sharing (cycle, sequence, middle-*), middle looping with optional input
# injection, the looping-inspired regularizer and Mixture-of-Recursions (expert- or token-choice routing, optional
# recursive KV sharing, optional auxiliary router); parameter names follow HF Llama so fixtures written from here (make_parity.py) are read by
# name in the C++ tests.
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Every config key with its default, the one list make_config reads keys from; tests/test_config.cpp checks that
# it has the keys and defaults of the C++ table (model_config_keys in src/model/config.cpp).
CONFIG_DEFAULTS = dict(
    vocab_size=256, d_model=256, n_heads=4, n_kv_heads=4, d_ff=688, n_layers=4, max_seq_len=256,
    tied_embeddings=True, rope_theta=10000.0, norm_eps=1e-5,
    sharing="none", n_recursions=1, prelude=0, loop_block=0, loop_count=1, coda=0,
    input_injection="none", loop_reg_k=0, loop_reg_lambda=0.0,
    # Mixture-of-Recursions (docs/design.md, "Mixture-of-Recursions"); mor_capacity None means c_r = (N_r - r) / N_r
    mor_routing="none", mor_router="linear", mor_gate="sigmoid", mor_alpha=0.1, mor_capacity=None,
    mor_aux_loss=1e-3, mor_balance_loss=0.1, mor_z_loss=1e-5, mor_kv_sharing=False,
    # expert-choice only: the BCE auxiliary loss trains a second, linear router per step on detached h
    mor_aux_router=False,
)
SHARINGS = ("none", "cycle", "sequence", "middle_cycle", "middle_sequence")
INPUT_INJECTIONS = ("none", "add", "concat")
MOR_ROUTINGS = ("none", "expert", "token")
MOR_ROUTERS = ("linear", "mlp")
MOR_GATES = ("sigmoid", "tanh")
# parameter groups of the looping-inspired regularizer, in the order its mean is taken (docs/design.md, "Looping and sharing")
LOOP_REG_GROUPS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")


# The precision of the model's matrix products, recur's Precision (docs/precision.md): "f32", or "bf16": both
# operands of every projection, MLP, loop-adapter and head product rounded to bf16 and the products accumulated in
# f32 (exact in f32: a product of two bf16 values has at most 16 significant bits); backward rounds the output
# gradient and uses the rounded operands. Routers, attention, norms and the loss stay in the model's dtype. Under
# torch.autocast the projections follow autocast instead; attention, the routers and the loss still run in the
# residual stream's dtype (fp32_region).
PRECISION = {"products": "f32"}


def set_precision(name):
    if name not in ("f32", "bf16"):
        raise ValueError(f"precision '{name}' unknown; use f32 or bf16")
    PRECISION["products"] = name


def round_bf16(t):
    return t.to(torch.bfloat16).to(t.dtype)  # round to nearest even


class Bf16Product(torch.autograd.Function):
    """x (..., C) @ w (OC, C)^T on bf16-rounded operands; backward on the rounded output gradient."""

    @staticmethod
    def forward(ctx, x, w):
        xr, wr = round_bf16(x), round_bf16(w)
        ctx.save_for_backward(xr, wr)
        return xr @ wr.T

    @staticmethod
    def backward(ctx, grad):
        xr, wr = ctx.saved_tensors
        g = round_bf16(grad)
        return g @ wr, g.reshape(-1, g.shape[-1]).T @ xr.reshape(-1, xr.shape[-1])


def product(x, w):
    """x (..., C) @ w (OC, C)^T: a matrix product of the model, in PRECISION."""
    if PRECISION["products"] == "bf16":
        return Bf16Product.apply(x, w)
    return F.linear(x, w)


def fp32_region():
    """Code that stays in the residual stream's dtype under torch.autocast (attention, routers, loss)."""
    return torch.autocast("cpu", enabled=False)


def make_config(**overrides):
    unknown = set(overrides) - set(CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; valid keys are {sorted(CONFIG_DEFAULTS)}")
    cfg = dict(CONFIG_DEFAULTS, **overrides)
    layer_schedule(cfg)  # validates the sharing settings
    if cfg["d_model"] % cfg["n_heads"] or cfg["n_heads"] % cfg["n_kv_heads"]:
        raise ValueError("need n_heads | d_model and n_kv_heads | n_heads")
    if (cfg["d_model"] // cfg["n_heads"]) % 2:
        raise ValueError("head_dim = d_model / n_heads must be even for RoPE")
    if cfg["input_injection"] not in INPUT_INJECTIONS:
        raise ValueError(f"input_injection '{cfg['input_injection']}' unknown; use one of {INPUT_INJECTIONS}")
    if cfg["input_injection"] != "none" and cfg["loop_block"] == 0:
        raise ValueError("input_injection needs a looped model (loop_block > 0)")
    k, n = cfg["loop_reg_k"], cfg["n_layers"]
    if k < 0:
        raise ValueError(f"loop_reg_k {k} must be >= 0 (0: regularizer off)")
    if k > 0:
        if cfg["sharing"] != "none" or cfg["loop_block"] > 0:
            raise ValueError("loop_reg_k > 0 is for non-looped models: needs sharing 'none' and loop_block 0")
        if n % k or n // k < 2:
            raise ValueError(f"loop_reg_k {k} must divide n_layers {n} into at least 2 blocks")
    check_mor_config(cfg)
    return cfg


def check_mor_config(cfg):
    routing, nr = cfg["mor_routing"], cfg["n_recursions"]
    if routing not in MOR_ROUTINGS:
        raise ValueError(f"mor_routing '{routing}' unknown; use one of {MOR_ROUTINGS}")
    if cfg["mor_router"] not in MOR_ROUTERS:
        raise ValueError(f"mor_router '{cfg['mor_router']}' unknown; use one of {MOR_ROUTERS}")
    if cfg["mor_gate"] not in MOR_GATES:
        raise ValueError(f"mor_gate '{cfg['mor_gate']}' unknown; use one of {MOR_GATES}")
    if not isinstance(cfg["mor_aux_router"], bool):
        raise ValueError(f"mor_aux_router {cfg['mor_aux_router']!r} must be true or false")
    if cfg["mor_aux_router"] and routing != "expert":
        raise ValueError("mor_aux_router needs mor_routing 'expert'")
    if routing == "none":
        if cfg["mor_kv_sharing"] or cfg["mor_capacity"] is not None:
            raise ValueError("mor_kv_sharing and mor_capacity need mor_routing 'expert' or 'token'")
        return
    if cfg["sharing"] not in ("cycle", "middle_cycle") or nr < 2:
        raise ValueError(f"mor_routing '{routing}' needs sharing 'cycle' or 'middle_cycle' and n_recursions >= 2")
    if cfg["mor_capacity"] is not None:
        c = cfg["mor_capacity"]
        if routing != "expert":
            raise ValueError("mor_capacity is for mor_routing 'expert'")
        if len(c) != nr or not all(0.0 < x <= 1.0 for x in c):
            raise ValueError(f"mor_capacity {c} needs n_recursions {nr} values in (0, 1]")
    if cfg["mor_kv_sharing"] and mor_capacities(cfg)[0] != 1.0:
        raise ValueError("mor_kv_sharing needs mor_capacity[0] == 1: the first recursion writes K/V for all tokens")


def mor_capacities(cfg):
    """Expert-choice capacity c_r per recursion step r, default (N_r - r) / N_r."""
    nr = cfg["n_recursions"]
    if cfg["mor_capacity"] is not None:
        return [float(c) for c in cfg["mor_capacity"]]
    return [(nr - r) / nr for r in range(nr)]


def load_config(path):
    with open(path) as f:
        return make_config(**json.load(f))


def layer_schedule(cfg):
    """Unique layer index used by each of the n_layers layer applications (docs/design.md, "Looping and sharing")."""
    n, nr, sharing = cfg["n_layers"], cfg["n_recursions"], cfg["sharing"]
    if sharing not in SHARINGS:
        raise ValueError(f"sharing '{sharing}' unknown; use one of {SHARINGS}")
    if cfg["loop_block"] > 0:  # middle looping: prelude, block^loop_count, coda
        p, k, loops, c = cfg["prelude"], cfg["loop_block"], cfg["loop_count"], cfg["coda"]
        if sharing != "none":
            raise ValueError("loop_block > 0 needs sharing 'none'")
        if p + k * loops + c != n:
            raise ValueError(f"n_layers {n} != prelude {p} + loop_block {k} * loop_count {loops} + coda {c}")
        return list(range(p)) + list(range(p, p + k)) * loops + list(range(p + k, p + k + c))
    if sharing == "none":
        return list(range(n))
    middle = sharing.startswith("middle_")
    m = n - 2 if middle else n  # applications that share weights
    if nr < 1 or m <= 0 or m % nr:
        raise ValueError(f"sharing '{sharing}' needs n_recursions {nr} to divide {m} shared layer applications")
    b = m // nr  # unique shared layers
    if sharing.endswith("cycle"):
        shared = [l % b for l in range(m)]     # 123 123 123
    else:
        shared = [l // nr for l in range(m)]   # 111 222 333
    if not middle:
        return shared
    return [0] + [1 + s for s in shared] + [b + 1]


def n_unique_layers(cfg):
    return max(layer_schedule(cfg)) + 1


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(seq_len, head_dim, theta, dtype):
    """cos, sin of shape (T, hd): angles pos * inv_freq repeated twice (rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    pos = torch.arange(seq_len, dtype=torch.float32)
    angles = torch.outer(pos, inv_freq)          # (T, hd/2)
    emb = torch.cat((angles, angles), dim=-1)    # (T, hd)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    # x (B, heads, T, hd); cos, sin (T, hd)
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, self.n_heads, self.n_kv_heads = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
        self.head_dim = d // self.n_heads
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x, cos, sin, pos=None, kv_cache=None):
        # x (B, T, d) -> (B, T, d): causal attention among the T tokens of x, whose positions increase along T
        # (a MoR step runs on a compacted sub-sequence); cos, sin (T, hd) are taken at those positions.
        # MoR recursive KV sharing passes a dict kv_cache per layer and the positions pos (T,): the first call
        # stores its keys and values (of every position) there, later calls attend to them instead of their own.
        B, T, _ = x.shape
        hd = self.head_dim
        q = product(x, self.q_proj.weight).to(x.dtype).view(B, T, self.n_heads, hd).transpose(1, 2)     # (B, H, T, hd)
        q = apply_rope(q, cos, sin)
        if kv_cache is not None and "k" in kv_cache:
            k, v = kv_cache["k"], kv_cache["v"]                             # (B, Hkv, S, hd), S all positions
            future = torch.arange(k.shape[2])[None, :] > pos[:, None]       # (T, S): key after the query
        else:
            k = product(x, self.k_proj.weight).to(x.dtype).view(B, T, self.n_kv_heads, hd).transpose(1, 2)
            v = product(x, self.v_proj.weight).to(x.dtype).view(B, T, self.n_kv_heads, hd).transpose(1, 2)
            k = apply_rope(k, cos, sin)
            future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
            if kv_cache is not None:
                kv_cache["k"], kv_cache["v"] = k, v
        # grouped-query: kv head g serves q heads g*G .. (g+1)*G-1, G = H / Hkv
        group = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(group, dim=1)                               # (B, H, S, hd)
        v = v.repeat_interleave(group, dim=1)
        with fp32_region():
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)              # (B, H, T, S)
            scores = scores.masked_fill(future, float("-inf"))
            att = F.softmax(scores, dim=-1)
            y = att @ v                                                     # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * hd)
        return product(y, self.o_proj.weight)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg["d_model"], cfg["d_ff"]
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        gate, up = product(x, self.gate_proj.weight), product(x, self.up_proj.weight)
        return product(F.silu(gate) * up, self.down_proj.weight)  # SwiGLU


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, h, cos, sin, pos=None, kv_cache=None):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, pos, kv_cache)
        h = h + self.mlp(self.post_attention_layernorm(h))
        return h


class MLPRouter(nn.Module):
    """Expert-choice router variant d -> 2d -> 1: z = fc2(silu(fc1 h))."""

    def __init__(self, d):
        super().__init__()
        self.fc1 = nn.Linear(d, 2 * d, bias=False)
        self.fc2 = nn.Linear(2 * d, 1, bias=False)

    def forward(self, h):
        return self.fc2(F.silu(self.fc1(h)))


class Decoder(nn.Module):
    """Holds the weights under the 'model.' prefix; Model drives the layer schedule."""

    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(n_unique_layers(cfg)))
        if cfg["input_injection"] == "concat":  # W (d, 2d): h = W [h ; e]; registered here to sit before norm
            self.loop_adapter = nn.Linear(2 * cfg["d_model"], cfg["d_model"], bias=False)
        d, nr = cfg["d_model"], cfg["n_recursions"]
        if cfg["mor_routing"] == "expert":  # one router per recursion step: z = w_r . h, or fc2(silu(fc1 h))
            if cfg["mor_router"] == "linear":
                self.mor_router = nn.ModuleList(nn.Linear(d, 1, bias=False) for _ in range(nr))
            else:
                self.mor_router = nn.ModuleList(MLPRouter(d) for _ in range(nr))
            if cfg["mor_aux_router"]:  # auxiliary router per step, z_aux = w_aux_r . h.detach(), w_aux_r (1, d)
                self.mor_aux_router = nn.ModuleList(nn.Linear(d, 1, bias=False) for _ in range(nr))
        if cfg["mor_routing"] == "token":  # one router for all steps: logits W h, W (N_r, d)
            self.mor_router = nn.Linear(d, nr, bias=False)
        self.norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.schedule = layer_schedule(cfg)
        # input injection: before loop iterations r = 1..loop_count-1, i.e. before layer applications
        # prelude + r*loop_block, h = inject(h, e) with e the hidden state that entered the looped block
        self.inject_at = set()
        if cfg["input_injection"] != "none":
            self.inject_at = {cfg["prelude"] + r * cfg["loop_block"] for r in range(1, cfg["loop_count"])}
        self.model = Decoder(cfg)
        self.lm_head = None
        if not cfg["tied_embeddings"]:
            self.lm_head = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False)
        if cfg["mor_routing"] != "none":
            # the recursion block: the shared unique layers (all of them for cycle, all but the first and last
            # for middle_cycle); recursion step r applies them once, in order
            n_unique = n_unique_layers(cfg)
            first = 1 if cfg["sharing"] == "middle_cycle" else 0
            self.mor_block = [self.model.layers[i] for i in range(first, n_unique - first)]
        if cfg["mor_routing"] == "token":
            # loss-free balancing bias (N_r), added to the router logits for the argmax only; not trained
            self.register_buffer("mor_bias", torch.zeros(cfg["n_recursions"]), persistent=False)

    def named_tensors(self):
        """Parameters by their fixture names, e.g. 'model.layers.0.self_attn.q_proj.weight'."""
        return dict(self.named_parameters())

    def forward(self, tokens, targets=None, return_stats=False):
        # tokens (B, T) int -> logits (B, T, V); loss when targets (B, T) given (targets < 0 ignored).
        # return_stats: also return a dict of loss parts and, for MoR, routing statistics (see mor_stack)
        B, T = tokens.shape
        if T > self.cfg["max_seq_len"]:
            raise ValueError(f"sequence length {T} > max_seq_len {self.cfg['max_seq_len']}")
        h = self.model.embed_tokens(tokens)
        hd = self.cfg["d_model"] // self.cfg["n_heads"]
        cos, sin = rope_cos_sin(T, hd, self.cfg["rope_theta"], h.dtype)
        stats = {}
        if self.cfg["mor_routing"] != "none":
            h, stats = self.mor_stack(h, cos, sin)
        else:
            e = None
            for n, i in enumerate(self.schedule):  # a shared layer is the same module, so its gradients add up
                if n == self.cfg["prelude"]:
                    e = h  # entering the looped block (used only by input injection)
                if n in self.inject_at:
                    h = self.inject(h, e)
                h = self.model.layers[i](h, cos, sin)
        h = self.model.norm(h)
        head = self.model.embed_tokens if self.lm_head is None else self.lm_head
        logits = product(h, head.weight)
        loss = None
        if targets is not None:
            loss = cross_entropy(logits, targets)
            stats["loss_ce"] = loss
            if self.cfg["loop_reg_k"] > 0:
                loss = loss + loop_regularizer(self)
            if self.cfg["mor_routing"] != "none":
                loss = loss + stats["loss_aux"] + stats["loss_z"]
        if return_stats:
            return logits, loss, stats
        return logits, loss

    def mor_stack(self, h, cos, sin):
        """Mixture-of-Recursions (docs/design.md, "Mixture-of-Recursions"): unique first layer (middle_cycle), the routed recursion stack, unique
        last layer (middle_cycle). h (B, T, d) -> h (B, T, d) and stats: loss_aux, loss_z (scalars, coefficients
        applied), selected[r][b] (positions that ran step r in row b, increasing), depth (B, T) (last step a token
        ran, -1 if none), margin (smallest score gap behind any routing decision: a near-tie can flip with
        rounding)."""
        middle = self.cfg["sharing"] == "middle_cycle"
        if middle:
            h = self.model.layers[0](h, cos, sin)
        if self.cfg["mor_routing"] == "expert":
            h, stats = self.mor_expert_choice(h, cos, sin)
        else:
            h, stats = self.mor_token_choice(h, cos, sin)
        if middle:
            h = self.model.layers[-1](h, cos, sin)
        return h, stats

    def mor_step(self, x, pos, cos, sin, kv_caches):
        """One recursion step on a compacted sub-sequence: x (1, k, d) holds the tokens at positions pos (k,),
        increasing. Causal attention among them, RoPE at their original positions. Returns the block's full
        output (1, k, d), residuals included."""
        for layer, kv_cache in zip(self.mor_block, kv_caches):
            x = layer(x, cos[pos], sin[pos], pos, kv_cache)
        return x

    def mor_expert_choice(self, h, cos, sin):
        """Expert-choice routing, each batch row on its own. Step r scores the tokens selected at step r-1 (all
        tokens at r = 0) with router r, keeps the top k_r = min(#candidates, max(1, floor(c_r T))) (equal scores:
        the lower position wins) and updates them by h <- h + g * Block(h), g = alpha * sigmoid(z) (or tanh).
        The BCE auxiliary loss (target 1 for the selected candidates) is on z, or with mor_aux_router on
        z_aux = w_aux_r . h.detach() of the same candidates: it then trains only the auxiliary router, and z gets
        the z-loss and the gate's gradient only."""
        cfg = self.cfg
        B, T, _ = h.shape
        nr, alpha = cfg["n_recursions"], cfg["mor_alpha"]
        capacity = mor_capacities(cfg)
        bce = [[] for _ in range(nr)]   # per step, per row: BCE mean over the step's candidates
        zsq = [[] for _ in range(nr)]   # per step, per row: mean z^2 over the step's candidates
        selected = [[] for _ in range(nr)]
        depth = torch.full((B, T), -1, dtype=torch.long)
        margin = math.inf
        rows = []
        for b in range(B):
            x = h[b:b + 1]                                           # (1, T, d)
            kv_caches = [{} if cfg["mor_kv_sharing"] else None for _ in self.mor_block]
            cand = torch.arange(T)                                   # candidates, increasing positions
            for r in range(nr):
                with fp32_region():
                    z = self.model.mor_router[r](x[0, cand]).squeeze(-1)  # (n,), h at the start of step r
                k = min(len(cand), max(1, math.floor(capacity[r] * T)))
                # top-k as a stable sort on (-z, index): not differentiated
                order = sorted(range(len(cand)), key=lambda i: (-z[i].item(), i))
                chosen = torch.tensor(sorted(order[:k]), dtype=torch.long)  # kept in position order
                if k < len(cand):  # gap between the last selected and the first left out
                    margin = min(margin, z[order[k - 1]].item() - z[order[k]].item())
                target = torch.zeros_like(z)
                target[chosen] = 1.0
                if cfg["mor_aux_router"]:  # same candidates and h, detached: no gradient into the model
                    with fp32_region():
                        z_aux = self.model.mor_aux_router[r](x[0, cand].detach()).squeeze(-1)  # (n,)
                    bce[r].append(F.binary_cross_entropy_with_logits(z_aux, target))
                else:
                    bce[r].append(F.binary_cross_entropy_with_logits(z, target))
                zsq[r].append(z.pow(2).mean())
                if cfg["mor_gate"] == "sigmoid":
                    g = alpha * torch.sigmoid(z[chosen])
                else:
                    g = alpha * torch.tanh(z[chosen])
                sel = cand[chosen]
                y = self.mor_step(x[:, sel], sel, cos, sin, kv_caches)  # (1, k, d)
                x = x.index_copy(1, sel, x[:, sel] + g[None, :, None] * y)
                selected[r].append(sel)
                depth[b, sel] = r
                cand = sel
            rows.append(x)
        # every row has the same candidates count per step, so the mean over rows is the mean over the batch
        loss_aux = cfg["mor_aux_loss"] * sum(torch.stack(step).mean() for step in bce)
        loss_z = cfg["mor_z_loss"] * sum(torch.stack(step).mean() for step in zsq)
        stats = dict(loss_aux=loss_aux, loss_z=loss_z, selected=selected, depth=depth, margin=margin)
        return torch.cat(rows), stats

    def mor_token_choice(self, h1, cos, sin):
        """Token-choice routing. h1 (B, T, d) enters the stack; p = softmax(W h1); depth i = argmax(W h1 + bias)
        (ties: lower index); a token runs steps 0..i: h <- Block(h) for r < i, h <- h1 + p_i * Block(h) at r = i."""
        cfg = self.cfg
        B, T, _ = h1.shape
        nr = cfg["n_recursions"]
        with fp32_region():
            logits = self.model.mor_router(h1)                       # (B, T, N_r)
        p = F.softmax(logits, dim=-1)
        scores = logits.detach() + self.mor_bias                     # the bias steers the argmax only
        depth = torch.argmax(scores, dim=-1)                         # (B, T), first maximum on ties
        top2 = torch.topk(scores, 2, dim=-1).values                  # gap to the runner-up
        margin = (top2[..., 0] - top2[..., 1]).min().item()
        p_last = p.gather(-1, depth[..., None])                      # (B, T, 1): p_i of each token's depth
        selected = [[] for _ in range(nr)]
        rows = []
        for b in range(B):
            x = h1[b:b + 1]                                          # (1, T, d)
            kv_caches = [{} if cfg["mor_kv_sharing"] else None for _ in self.mor_block]
            for r in range(nr):
                sel = torch.nonzero(depth[b] >= r).flatten()         # still running at step r, increasing
                selected[r].append(sel)
                if len(sel) == 0:
                    continue
                y = self.mor_step(x[:, sel], sel, cos, sin, kv_caches)  # (1, k, d)
                last = (depth[b, sel] == r)[None, :, None]
                x = x.index_copy(1, sel, torch.where(last, h1[b:b + 1, sel] + p_last[b:b + 1, sel] * y, y))
            rows.append(x)
        # balancing: sum_i P_i f_i, P_i mean probability of depth i, f_i = N_r * fraction routed to i (constant)
        P = p.mean(dim=(0, 1))
        f = nr * F.one_hot(depth, nr).to(p.dtype).mean(dim=(0, 1))
        loss_aux = cfg["mor_balance_loss"] * (P * f).sum()
        loss_z = cfg["mor_z_loss"] * torch.logsumexp(logits, dim=-1).pow(2).mean()
        stats = dict(loss_aux=loss_aux, loss_z=loss_z, selected=selected, depth=depth, margin=margin)
        return torch.cat(rows), stats

    def inject(self, h, e):
        # h, e (B, T, d) -> (B, T, d)
        if self.cfg["input_injection"] == "add":
            return h + e
        return product(torch.cat((h, e), dim=-1), self.model.loop_adapter.weight)  # (B, T, 2d) @ W^T, W (d, 2d)


def cross_entropy(logits, targets):
    """Mean over positions whose target >= 0."""
    valid = targets >= 0
    if logits.dtype == torch.bfloat16:  # autocast's bf16 logits: the loss itself in fp32
        logits = logits.float()
    with fp32_region():
        return F.cross_entropy(logits[valid], targets[valid].long())


def loop_regularizer(model):
    """Looping-inspired regularizer (docs/design.md, "Looping and sharing"), a scalar tensor pulling layer l towards layer l+k (l < L-k):
    lambda * mean_G [1 - 1/(L-k) sum_{i=0}^{L/k-2} sum_{j<k} cos(theta_G^(ik+j), theta_G^((i+1)k+j))]."""
    k, lam, L = model.cfg["loop_reg_k"], model.cfg["loop_reg_lambda"], model.cfg["n_layers"]
    layers = model.model.layers
    terms = []
    for group in LOOP_REG_GROUPS:
        cos_sum = 0.0
        for i in range(L // k - 1):
            for j in range(k):
                a = layers[i * k + j].get_submodule(group).weight.flatten()
                b = layers[(i + 1) * k + j].get_submodule(group).weight.flatten()
                cos_sum = cos_sum + torch.dot(a, b) / (a.norm() * b.norm())
        terms.append(1.0 - cos_sum / (L - k))
    return lam * torch.stack(terms).mean()


def init_weights(model, seed):
    """N(0, 0.02) linear and embedding weights, unit norm weights; the concat loop adapter starts as [I | 0]
    (W [h ; e] = h: the plain loop) and draws no random numbers, so the other weights do not depend on it."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if module is getattr(model.model, "loop_adapter", None):
                d = model.cfg["d_model"]
                module.weight.zero_()
                module.weight[:, :d] = torch.eye(d)
            elif isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, 0.02)
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)


def configure_optimizer(model, lr, betas, eps, weight_decay):
    """AdamW; weight decay on 2-D weights (embeddings, projections, lm_head, loop adapter), none on 1-D norms."""
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def lr_at(step, schedule, lr, warmup_steps, total_steps, min_lr_ratio, decay_frac):
    """Learning rate at 0-based step."""
    lr_min = lr * min_lr_ratio
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
    if schedule == "wsd":
        # round half away from zero (C++ std::round), not Python's round-half-to-even
        decay_start = total_steps - int(math.floor(decay_frac * total_steps + 0.5))
        if step < decay_start:
            return lr
        frac = (step - decay_start + 1) / (total_steps - decay_start)
        return lr * (1.0 - frac) + lr_min * frac
    raise ValueError(f"schedule '{schedule}' unknown; use cosine, wsd or constant")


def clip_grad_norm(model, clip):
    """Clips in place; returns the total (pre-clip) gradient norm as a float."""
    return float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
