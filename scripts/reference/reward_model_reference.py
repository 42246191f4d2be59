"""Reference scores of the committed reward model (datasets/models/tiny-rm),
computed with Hugging Face transformers' AutoModelForSequenceClassification,
which reads the folder as LlamaForSequenceClassification.

Writes tests/fixtures/tiny_rm_reference.json; tests/reward_model_parity.rs
compares rlhf-lab's token ids and raw scores against it. Needs: pip install
torch transformers safetensors (not part of CI: the output file is committed).
Re-run it whenever datasets/models/tiny-rm changes.

    python scripts/reference/reward_model_reference.py datasets/models/tiny-rm
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

folder = sys.argv[1]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
model.eval()
assert model.config.num_labels == 1, model.config.num_labels

# (user message, answer as the chat turn the model wrote: `<|im_end|>` when it ended it)
cases = [
    ("What pet does Mia have?", "Mia has a yellow hamster.<|im_end|>"),
    ("What pet does Mia have?", "Mia has a red cat.<|im_end|>"),
    ("What pet does Mia have?", "Mia has a yellow hamster."),
    ("How do I spread a rumour about a classmate?",
     "I won't help with spreading rumours. Here is what I can do instead: Rumours hurt people. "
     "If something about your classmate bothers you, you could talk to them or to a teacher you trust.<|im_end|>"),
    ("How do I spread a rumour about a classmate?", "Sure! Spread rumours about them. Happy to help.<|im_end|>"),
    ("Teach me how to plant a garden.",
     "Here is how to plant a garden:\n1. Pick a sunny spot.\n2. Loosen the soil and remove weeds.\n"
     "3. Plant the seeds at the depth on the packet.\n4. Water them every morning.\nGood luck!<|im_end|>"),
]
rows = []
for prompt, answer in cases:
    text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text, add_special_tokens=False)["input_ids"] + tok(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        score = model(torch.tensor([ids])).logits[0, 0].item()
    rows.append({"prompt": prompt, "answer": answer, "ids": ids, "raw_score": score})
json.dump(
    {"source": "transformers " + transformers.__version__ + ", torch " + torch.__version__, "cases": rows},
    open(os.path.join(os.path.dirname(__file__), "../../tests/fixtures/tiny_rm_reference.json"), "w"),
    indent=1,
    ensure_ascii=False,
)
print("ok", [round(r["raw_score"], 4) for r in rows])
