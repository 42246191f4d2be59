//! Concept diagrams drawn as SVG: the phases of RLHF, and what a value network
//! and a reward model each score. Text boxes and arrows, no data.

use super::Figure;

use super::escape_xml as escape;

/// A rounded box with a bold title and lines of text below it.
struct TextBox<'a> {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    fill: &'a str,
    title: &'a str,
    lines: &'a [&'a str],
}

impl TextBox<'_> {
    fn draw(&self, svg: &mut String) {
        let (x, y, w, h) = (self.x, self.y, self.w, self.h);
        svg.push_str(&format!(
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="8" fill="{}" stroke="#333"/>"##,
            self.fill
        ));
        let cx = x + w / 2.0;
        svg.push_str(&format!(
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-weight="bold" font-size="14">{}</text>"##,
            y + 22.0,
            escape(self.title)
        ));
        for (i, line) in self.lines.iter().enumerate() {
            svg.push_str(&format!(
                r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"##,
                y + 44.0 + 17.0 * i as f64,
                escape(line)
            ));
        }
    }
}

/// An arrow from (x1, y1) to (x2, y2) with an optional label above its middle.
fn arrow(svg: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, label: &str) {
    svg.push_str(&format!(
        r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="#333" stroke-width="1.5" marker-end="url(#head)"/>"##
    ));
    if !label.is_empty() {
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#555">{}</text>"##,
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 6.0,
            escape(label)
        ));
    }
}

fn open_svg(width: u32, height: u32, title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif"><rect width="{width}" height="{height}" fill="white"/><defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs><text x="{:.1}" y="26" text-anchor="middle" font-size="17">{}</text>"##,
        width as f64 / 2.0,
        escape(title)
    )
}

/// The four phases of RLHF, left to right, each with its data, its product and
/// the notebook that builds it; a bracket marks phases 2–4 as the "three
/// steps" of InstructGPT (Ouyang et al. 2022, Figure 2), which takes a
/// pre-trained model as given.
pub fn rlhf_phases() -> Figure {
    let (width, height) = (1060u32, 330u32);
    let mut svg = open_svg(width, height, "The four phases of RLHF");
    let phases: [(&str, &str, [&str; 4]); 4] = [
        (
            "1. Pre-train",
            "#d9e6f2",
            [
                "next-token loss on",
                "a large text corpus",
                "→ a base model",
                "(notebook 03)",
            ],
        ),
        (
            "2. Supervised fine-tuning",
            "#dcefd9",
            [
                "the same loss on",
                "human demonstrations",
                "→ the SFT model",
                "(notebook 04)",
            ],
        ),
        (
            "3. Reward model",
            "#fbe5c8",
            [
                "people compare answers;",
                "a model learns to score",
                "→ r(prompt, answer)",
                "(notebooks 05, 06)",
            ],
        ),
        (
            "4. Reinforcement learning",
            "#f6d5d5",
            [
                "PPO maximises r − β·KL",
                "to the SFT reference",
                "→ the aligned policy",
                "(notebook 07; DPO: 09)",
            ],
        ),
    ];
    let (w, h, gap, top) = (220.0, 120.0, 40.0, 120.0);
    let left = (width as f64 - (4.0 * w + 3.0 * gap)) / 2.0;
    for (i, (title, fill, lines)) in phases.iter().enumerate() {
        let x = left + i as f64 * (w + gap);
        TextBox {
            x,
            y: top,
            w,
            h,
            fill,
            title,
            lines,
        }
        .draw(&mut svg);
        if i > 0 {
            arrow(
                &mut svg,
                x - gap + 2.0,
                top + h / 2.0,
                x - 2.0,
                top + h / 2.0,
                "",
            );
        }
    }
    // InstructGPT's three steps: a bracket over phases 2–4.
    let (x1, x2, y) = (left + w + gap, left + 4.0 * w + 3.0 * gap, top - 22.0);
    svg.push_str(&format!(
        r##"<path d="M{x1:.1},{:.1} L{x1:.1},{y:.1} L{x2:.1},{y:.1} L{x2:.1},{:.1}" fill="none" stroke="#555"/>"##,
        y + 10.0,
        y + 10.0
    ));
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" fill="#333">InstructGPT&apos;s &quot;three steps&quot; (Ouyang et al. 2022, Fig. 2) start from a pre-trained model</text>"##,
        (x1 + x2) / 2.0,
        y - 8.0
    ));
    // The reference: the SFT model, frozen, feeds phase 4's KL penalty.
    let (sft_x, rl_x) = (left + w + gap + w / 2.0, left + 3.0 * (w + gap) + w / 2.0);
    let below = top + h;
    svg.push_str(&format!(
        r##"<path d="M{sft_x:.1},{below:.1} L{sft_x:.1},{:.1} L{rl_x:.1},{:.1} L{rl_x:.1},{:.1}" fill="none" stroke="#333" stroke-dasharray="5,4" marker-end="url(#head)"/>"##,
        below + 40.0,
        below + 40.0,
        below + 3.0
    ));
    svg.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#333">a frozen copy of the SFT model is the reference π_ref; the SFT model is also where the policy starts</text>"##,
        (sft_x + rl_x) / 2.0,
        below + 58.0
    ));
    svg.push_str("</svg>");
    Figure::from_svg(svg, width, height)
}

/// Side by side, what a value network and a reward model take in, put out,
/// learn from and are used for — the two numbers RL from human feedback
/// keeps apart.
pub fn value_vs_reward() -> Figure {
    let (width, height) = (900u32, 330u32);
    let mut svg = open_svg(
        width,
        height,
        "Two different numbers: a value network and a reward model",
    );
    let (w, h, top) = (380.0, 240.0, 60.0);
    TextBox {
        x: 40.0,
        y: top,
        w,
        h,
        fill: "#d9e6f2",
        title: "Value network V(s)",
        lines: &[
            "scores a STATE, mid-way: a gridworld cell,",
            "or the text so far",
            "",
            "predicts the return still to come from here",
            "under the current policy",
            "",
            "learns from the rewards the agent collects",
            "(regression to returns, notebook 02)",
            "",
            "is the critic: PPO's advantages Â_t",
            "compare what happened with what V expected",
        ],
    }
    .draw(&mut svg);
    TextBox {
        x: 480.0,
        y: top,
        w,
        h,
        fill: "#fbe5c8",
        title: "Reward model r(prompt, answer)",
        lines: &[
            "scores a FINISHED answer to a prompt",
            "",
            "",
            "says how good the answer is:",
            "the reward itself, paid once at the end",
            "",
            "learns from people's comparisons",
            "(Bradley–Terry loss, notebook 06)",
            "",
            "stands in for the human evaluator;",
            "frozen while PPO trains the policy",
        ],
    }
    .draw(&mut svg);
    arrow(
        &mut svg,
        480.0 - 4.0,
        top + h / 2.0,
        40.0 + w + 4.0,
        top + h / 2.0,
        "reward",
    );
    svg.push_str("</svg>");
    Figure::from_svg(svg, width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both diagrams are valid SVG documents that name what they explain.
    #[test]
    fn diagrams_are_valid_svg_with_their_words() {
        let phases = rlhf_phases();
        assert!(Figure::from_svg_document(phases.svg().to_string()).is_ok());
        for word in [
            "Pre-train",
            "Supervised fine-tuning",
            "Reward model",
            "three steps",
        ] {
            assert!(phases.svg().contains(word), "no `{word}`");
        }
        let two = value_vs_reward();
        assert!(Figure::from_svg_document(two.svg().to_string()).is_ok());
        assert!(two.svg().contains("Value network") && two.svg().contains("FINISHED answer"));
    }
}
