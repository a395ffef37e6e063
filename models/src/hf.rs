//! Reading HF `config.json` files and safetensors directories: helpers the architectures
//! that open HF checkpoints share (Qwen2, Qwen3, Phi-3).

use crate::error::{Error, Result};
use lazyforge::Checkpoint;
use serde_json::Value;
use std::path::Path;

/// A boolean key of an HF config, false when absent.
pub(crate) fn flag(path: &Path, v: &Value, key: &str) -> Result<bool> {
    match v.get(key).filter(|x| !x.is_null()) {
        None => Ok(false),
        Some(x) => x.as_bool().ok_or_else(|| bad(path, key, "a boolean")),
    }
}

/// The error for a key of an HF config that is not what is wanted.
pub(crate) fn bad(path: &Path, key: &str, want: &str) -> Error {
    Error::Config(format!("{}: '{key}' is not {want}", path.display()))
}

/// Refuses what these models would compute wrongly: an activation other than SiLU, and RoPE
/// scaling in the 5.x layout (Llama's reader refuses the 4.x `rope_scaling`).
pub(crate) fn refuse_unsupported(path: &Path, v: &Value) -> Result<()> {
    let act = v.get("hidden_act").and_then(Value::as_str);
    let rope = v
        .pointer("/rope_parameters/rope_type")
        .and_then(Value::as_str);
    match (act.unwrap_or("silu"), rope.unwrap_or("default")) {
        ("silu", "default") => Ok(()),
        ("silu", _) => Err(bad(path, "rope_parameters.rope_type", "\"default\"")),
        _ => Err(bad(path, "hidden_act", "\"silu\"")),
    }
}

/// transformers' rule for which layers slide (see the module docs).
pub(crate) fn layer_windows(path: &Path, v: &Value, n: usize) -> Result<Vec<Option<usize>>> {
    let window = v.get("sliding_window").and_then(Value::as_u64);
    let window = match window.filter(|&w| w > 0) {
        Some(w) if flag(path, v, "use_sliding_window")? => w as usize,
        _ => return Ok(vec![None; n]),
    };
    let full = v.get("max_window_layers").and_then(Value::as_u64);
    let types = v.get("layer_types").filter(|x| !x.is_null());
    let slides = |i: usize| match types {
        None => Ok(i as u64 >= full.unwrap_or(28)),
        Some(t) => (t
            .get(i)
            .and_then(Value::as_str)
            .map(|t| t == "sliding_attention"))
        .ok_or_else(|| bad(path, "layer_types", "a string per layer")),
    };
    (0..n).map(|i| Ok(slides(i)?.then_some(window))).collect()
}

/// Opens an HF directory's safetensors under the GGUF names `alias` gives. The LM head falls
/// back to the token embeddings only when `tied`: like transformers 5.x, an `lm_head.weight`
/// in the file is used even then (4.x tied it to the embeddings instead).
pub(crate) fn open_hf(
    dir: &Path,
    alias: fn(&str) -> Option<String>,
    tied: bool,
) -> Result<Checkpoint> {
    let checkpoint = Checkpoint::open(dir)?.with_aliases(alias)?;
    if !tied && !checkpoint.contains("output.weight") {
        let why = "no lm_head.weight, but config.json has tie_word_embeddings false";
        return Err(Error::Config(format!("{}: {why}", dir.display())));
    }
    Ok(checkpoint)
}
