// Reference solutions of notebook 04's exercises, one section per exercise id.
// `scripts/run_notebooks.py --solutions notebooks/solutions` puts each section in
// place of the cell tagged `exercise:<id>` before running the notebook (and fails
// unless every check cell prints ✓); tests/exercises.rs compiles this file and
// runs the checkers on it. Try the exercises yourself before you read on.

// exercise: 04-loss-mask
/// true for the tokens SFT trains on: the assistant's content and its <|im_end|>.
fn my_loss_mask(tokens: &[String]) -> Vec<bool> {
    let mut mask = Vec::with_capacity(tokens.len());
    let mut header = String::new();
    let (mut in_header, mut in_answer) = (false, false);
    for token in tokens {
        if token == "<|im_start|>" {
            // A new message: its header runs up to the first newline.
            in_header = true;
            header.clear();
            mask.push(false);
        } else if in_header {
            header.push_str(token);
            if header.contains('\n') {
                in_header = false;
                in_answer = header.trim() == "assistant";
            }
            mask.push(false);
        } else if token == "<|im_end|>" {
            mask.push(in_answer); // the answer's end counts: the model learns to stop
            in_answer = false;
        } else {
            mask.push(in_answer); // content (true for the assistant's) or the newline after a message
        }
    }
    mask
}

// exercise: 04-masked-loss
/// L = −Σ mᵢ·logp[i] / Σ mᵢ.
fn my_masked_loss(logp: &[f64], mask: &[bool]) -> f64 {
    let (mut total, mut counted) = (0.0, 0.0);
    for (lp, &m) in logp.iter().zip(mask) {
        if m {
            total -= lp;
            counted += 1.0;
        }
    }
    total / counted
}
