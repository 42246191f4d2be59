//! File helpers: atomic writes (a crash never leaves a half-written file or
//! checkpoint folder), JSON Lines with errors that name the file and the line,
//! JSON config files.
//!
//! | module | job | candle |
//! |---|---|---|
//! | [`atomic`] | files and whole folders written atomically; the folder swap | no |
//! | [`checkpoint`] | the one checkpoint layout of every trainer, and which folder to resume | no |
//! | [`jsonl`] | the one JSON Lines reader and writer | no |
//! | [`mapped`] | a file's text mapped into memory, not copied | no |
//! | [`config`] | JSON config files over a type's defaults | no |
//! | [`safetensors`] | named tensors as safetensors, atomically | yes |
//!
//! Rung 5 ([`crate::feedback`]) uses no candle: it imports [`atomic`] and
//! [`jsonl`] (which reads through [`mapped`]) only.

pub mod atomic;
pub mod checkpoint;
pub mod config;
pub mod jsonl;
pub mod mapped;
pub mod safetensors;

pub use atomic::{
    check_output_dir_writable, replace_dir, sibling, write_atomic, write_dir_atomic,
    write_json_atomic,
};
pub use checkpoint::{checkpoint_to_resume, read_trainer_state, write_trainer_state};
pub use config::{merge_json, read_config};
pub use jsonl::{read_jsonl, write_jsonl};
pub use safetensors::save_safetensors_atomic;
