//! Rung 3: a transformer language model — the policy of the later rungs. The
//! state is the text so far, the action is the next token, the action space is
//! the vocabulary.
//!
//! | module | job |
//! |---|---|
//! | [`config`] | model shape, Hugging Face `config.json` |
//! | [`model`] | the Llama-style decoder, KV cache |
//! | [`ops`] | differentiable RMSNorm, softmax, RoPE |
//! | [`tokenizer`] | byte-level BPE, special tokens, ChatML, padding |
//! | [`weights`] | initialisation, safetensors, GGUF dequantization |
//! | [`lora`] | low-rank adapters, on/off/merge, PEFT's file format |
//! | [`memory`] | memory, precision and speed per setup, measured |
//! | [`memory_arithmetic`] | parameters × bytes: weights per format, training with AdamW |
//! | [`speed`] | training and generation tokens/s of the tiny model, measured |
//! | [`quantize`] | per-channel int8 weights for a frozen base |
//! | [`pretrained`] | [`LanguageModel`]: load / save / clone |
//! | [`hub`] | the Hugging Face hub cache and downloads |
//! | [`sample`] | greedy, temperature, top-k, top-p, batched generation |
//! | [`data`] | next-token batches and the masked loss |
//! | [`train`] | the one training loop: objectives, AdamW, schedule, checkpoints |
//! | [`pretrain`] | the corpus, its tokenizer, a fresh model (rung 3) |
//! | [`sft`] | supervised fine-tuning: the assistant-only loss mask, batches (rung 4) |
//! | [`sft_data`] | conversations (TRL's messages format, JSONL), the `datasets/sft` demonstrations and data card |
//! | [`behaviour`] | a chat model's behaviour per task kind: exact match, refusal with help, ended turns |

pub mod behaviour;
pub mod config;
pub mod data;
pub mod few_shot;
pub mod head_patterns;
pub mod hub;
pub mod lora;
pub mod memory;
pub mod memory_arithmetic;
pub mod model;
pub mod ops;
pub mod plots;
pub mod pretrain;
pub mod pretrained;
pub mod quantize;
pub mod sample;
pub mod sft;
pub mod sft_data;
pub mod speed;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use config::LlamaConfig;
pub use data::{LmBatch, NextTokenLoss, TokenStream};
pub use model::{ForwardOutput, KvCache, Llama};
pub use pretrained::LanguageModel;
pub use sample::{Generated, SamplingConfig, TextGeneration};
pub use tokenizer::{ChatMessage, PaddingSide, TextTokenizer};
pub use train::{
    resume_language_model, resume_language_model_as, BatchSource, LmTrainer, LossOutput, Metrics,
    Objective, ResumedRun, RunOptions, SampleRecord, StepPhases, TrainConfig, TrainRecord, Trainer,
};
