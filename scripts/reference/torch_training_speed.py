"""PyTorch's training speed on the shapes `rlhf-lab lm speed` measures, for a
side-by-side comparison (issue 17): Hugging Face's Llama built from the
committed tiny model's config.json (4 layers, width 128, 4 query / 2 KV heads,
MLP 344, tied embeddings), AdamW (β = 0.9, 0.95; weight decay 0.1 on
matrices) with global-norm clipping at 1.0 — the same update
`rlhf_lab::lm::Trainer` takes. Tokens/s counts the positions of the timed
updates (batch × padded length) after one untimed warm-up update, as
`lm::speed::time_training` does. Shapes (`--shape`):

- `pretrain`: LlamaForCausalLM, 16 windows × 64 target tokens.
- `sft`: LlamaForCausalLM, 16 conversations right-padded to `--seq-len` (pass
  the mean padded length `rlhf-lab lm speed --shape sft` prints), the loss on
  the second half of each row (the assistant's tokens; the same cost).
- `rm`: LlamaModel and a scalar head (no bias) read at each row's last real
  token, the Bradley–Terry loss −log σ(r_chosen − r_rejected) over
  `--batch-size` pairs: 2·batch rows padded to `--seq-len` (pass the mean
  padded length `rlhf-lab lm speed --shape rm` prints).

Needs torch and transformers in a scratch environment (not a project
dependency, not run by CI):

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch transformers
    /tmp/torchvenv/bin/python scripts/reference/torch_training_speed.py --threads 1 --json
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--shape", choices=["pretrain", "sft", "rm"], default="pretrain")
p.add_argument("--config", default="datasets/models/tiny-pretrained/config.json")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--batch-size", type=int, default=16)
p.add_argument("--seq-len", type=int, default=64)
p.add_argument("--json", action="store_true", help="print one line of JSON")
args = p.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(0)
with open(args.config) as f:
    config = LlamaConfig(**json.load(f))
vocab = config.vocab_size
rows = 2 * args.batch_size if args.shape == "rm" else args.batch_size


class RewardModel(torch.nn.Module):
    """The trunk and a scalar head read at each row's last real token."""

    def __init__(self, config):
        super().__init__()
        self.trunk = LlamaModel(config)
        self.score = torch.nn.Linear(config.hidden_size, 1, bias=False)

    def forward(self, input_ids, last):
        hidden = self.trunk(input_ids=input_ids).last_hidden_state
        return self.score(hidden[torch.arange(hidden.shape[0]), last]).squeeze(-1)


model = RewardModel(config) if args.shape == "rm" else LlamaForCausalLM(config)
model.train()
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW(
    [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
    lr=3e-3,
    betas=(0.9, 0.95),
)


phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}


def loss_of_batch():
    if args.shape == "rm":
        ids = torch.randint(0, vocab, (rows, args.seq_len))
        last = torch.randint(args.seq_len // 2, args.seq_len, (rows,))
        rewards = model(ids, last)
        chosen, rejected = rewards[: args.batch_size], rewards[args.batch_size :]
        return -F.logsigmoid(chosen - rejected).mean()
    window = torch.randint(0, vocab, (rows, args.seq_len + 1))
    targets = window[:, 1:].clone()
    if args.shape == "sft":
        targets[:, : args.seq_len // 2] = -100
    logits = model(input_ids=window[:, :-1]).logits
    return F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)


def update():
    t0 = time.perf_counter()
    loss = loss_of_batch()
    t1 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


update()  # warm-up, untimed
start = time.perf_counter()
for _ in range(args.steps):
    for name, seconds in zip(phases, update()):
        phases[name] += seconds
seconds = time.perf_counter() - start
tokens = args.steps * rows * args.seq_len
report = {
    "shape": args.shape,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "parameters": sum(p.numel() for p in model.parameters()),
    "tokens_per_second": tokens / seconds,
    "ms_per_step": 1e3 * seconds / args.steps,
    "forward_ms": 1e3 * phases["forward"] / args.steps,
    "backward_ms": 1e3 * phases["backward"] / args.steps,
    "optimizer_ms": 1e3 * phases["optimizer"] / args.steps,
}
if args.json:
    print(json.dumps(report))
else:
    print(
        f"PyTorch {report['torch']}, {args.shape}, {report['threads']} threads, {report['parameters']} parameters, "
        f"batch {rows} × {args.seq_len}: "
        f"{report['tokens_per_second']:.0f} tokens/s ({report['ms_per_step']:.1f} ms/step: "
        f"forward {report['forward_ms']:.1f}, backward {report['backward_ms']:.1f}, "
        f"optimizer {report['optimizer_ms']:.1f})"
    )
