//! `lazyforge inspect`: a checkpoint's metadata and tensor table, as text or JSON.

use lazyforge::source::checkpoint::{Checkpoint, Format};
use lazyforge::source::gguf::{GgufFile, MetaValue};
use lazyforge::Result;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// Arrays longer than this are summarized in text output (type and length).
const TEXT_ARRAY_PREVIEW: usize = 8;

/// The whole report as one JSON document. Metadata arrays are summarized by element type
/// and length unless `full`.
pub fn to_json(ckpt: &Checkpoint, full: bool) -> Result<Value> {
    let mut doc = Map::new();
    doc.insert("path".into(), json!(ckpt.path().display().to_string()));
    doc.insert("format".into(), json!(ckpt.format()));
    doc.insert(
        "files".into(),
        json!(ckpt
            .files()
            .iter()
            .map(|f| json!({"path": f.path().display().to_string(), "bytes": f.len()}))
            .collect::<Vec<_>>()),
    );
    if let Some(g) = ckpt.gguf() {
        doc.insert("gguf_version".into(), json!(g.version()));
        doc.insert("alignment".into(), json!(g.alignment()));
        doc.insert("data_offset".into(), json!(g.data_offset()));
        let mut meta = Map::new();
        for (key, value) in g.metadata() {
            meta.insert(key.clone(), meta_json(g, value, full)?);
        }
        doc.insert("metadata".into(), Value::Object(meta));
    } else {
        doc.insert("metadata".into(), json!(ckpt.safetensors_metadata()));
    }
    let tensors: Vec<Value> = ckpt
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "shape": t.shape,
                "bytes": t.len,
                "offset": t.offset,
                "file": t.file,
            })
        })
        .collect();
    doc.insert("tensor_count".into(), json!(tensors.len()));
    doc.insert("tensors".into(), Value::Array(tensors));
    if !ckpt.unsupported_tensors().is_empty() {
        doc.insert(
            "unsupported_tensors".into(),
            json!(ckpt.unsupported_tensors()),
        );
    }
    let mut totals = Map::new();
    for (dtype, (count, bytes)) in ckpt.bytes_by_dtype() {
        totals.insert(
            dtype.name().into(),
            json!({"tensors": count, "bytes": bytes}),
        );
    }
    doc.insert("totals".into(), Value::Object(totals));
    doc.insert(
        "parameters".into(),
        json!(ckpt.tensors().iter().map(|t| t.elem_count()).sum::<u64>()),
    );
    Ok(Value::Object(doc))
}

fn meta_json(g: &GgufFile, value: &MetaValue, full: bool) -> Result<Value> {
    Ok(match value {
        MetaValue::Array(arr) if !full => {
            json!({"array": arr.elem_type().name(), "len": arr.len()})
        }
        MetaValue::Array(arr) => Value::Array(
            g.array_values(arr)?
                .iter()
                .map(|v| meta_json(g, v, true))
                .collect::<Result<_>>()?,
        ),
        MetaValue::U8(v) => json!(v),
        MetaValue::I8(v) => json!(v),
        MetaValue::U16(v) => json!(v),
        MetaValue::I16(v) => json!(v),
        MetaValue::U32(v) => json!(v),
        MetaValue::I32(v) => json!(v),
        MetaValue::U64(v) => json!(v),
        MetaValue::I64(v) => json!(v),
        MetaValue::F32(v) => json!(v),
        MetaValue::F64(v) => json!(v),
        MetaValue::Bool(v) => json!(v),
        MetaValue::String(v) => json!(v),
    })
}

/// The report as text: header, metadata, tensor table, totals per dtype.
pub fn to_text(ckpt: &Checkpoint, full: bool) -> Result<String> {
    let mut out = String::new();
    let format = match ckpt.format() {
        Format::Gguf => "GGUF",
        Format::Safetensors => "safetensors",
        Format::ShardedSafetensors => "sharded safetensors",
    };
    let bytes: u64 = ckpt.files().iter().map(|f| f.len()).sum();
    let _ = writeln!(
        out,
        "{}: {format}, {} file(s), {bytes} bytes",
        ckpt.path().display(),
        ckpt.files().len()
    );
    if let Some(g) = ckpt.gguf() {
        let _ = writeln!(
            out,
            "GGUF v{}, alignment {}, tensor data at offset {}",
            g.version(),
            g.alignment(),
            g.data_offset()
        );
        let _ = writeln!(out, "\nmetadata ({} keys):", g.metadata().len());
        for (key, value) in g.metadata() {
            let _ = writeln!(out, "  {key} = {}", meta_text(g, value, full)?);
        }
    } else if !ckpt.safetensors_metadata().is_empty() {
        let _ = writeln!(
            out,
            "\nmetadata ({} keys):",
            ckpt.safetensors_metadata().len()
        );
        for (k, v) in ckpt.safetensors_metadata() {
            let _ = writeln!(out, "  {k} = {v:?}");
        }
    }
    let name_w = ckpt
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "\ntensors ({}):", ckpt.tensors().len());
    let _ = writeln!(
        out,
        "  {:name_w$}  {:5}  {:>20}  {:>12}  {:>12}",
        "name", "dtype", "shape", "bytes", "offset"
    );
    for t in ckpt.tensors() {
        let shape = format!("{:?}", t.shape);
        let _ = writeln!(
            out,
            "  {:name_w$}  {:5}  {:>20}  {:>12}  {:>12}",
            t.name,
            t.dtype.name(),
            shape,
            t.len,
            t.offset
        );
    }
    for (name, dtype) in ckpt.unsupported_tensors() {
        let _ = writeln!(out, "  {name:name_w$}  {dtype} (not loadable by lazyforge)");
    }
    let _ = writeln!(out, "\ntotals:");
    let (mut all_n, mut all_b) = (0, 0);
    for (dtype, (count, bytes)) in ckpt.bytes_by_dtype() {
        let _ = writeln!(
            out,
            "  {:5}  {count:>5} tensors  {bytes:>14} bytes",
            dtype.name()
        );
        all_n += count;
        all_b += bytes;
    }
    let params: u64 = ckpt.tensors().iter().map(|t| t.elem_count()).sum();
    let _ = writeln!(
        out,
        "  {:5}  {all_n:>5} tensors  {all_b:>14} bytes  {params} parameters",
        "all"
    );
    Ok(out)
}

fn meta_text(g: &GgufFile, value: &MetaValue, full: bool) -> Result<String> {
    Ok(match value {
        MetaValue::Array(arr) if full || arr.len() <= TEXT_ARRAY_PREVIEW as u64 => {
            let items = g
                .array_values(arr)?
                .iter()
                .map(|v| meta_text(g, v, full))
                .collect::<Result<Vec<_>>>()?;
            format!("[{}]", items.join(", "))
        }
        MetaValue::Array(arr) => format!("[{}; {}]", arr.elem_type().name(), arr.len()),
        MetaValue::String(s) if !full && s.chars().count() > 120 => {
            let head: String = s.chars().take(117).collect();
            format!("{:?}... ({} chars)", head, s.chars().count())
        }
        MetaValue::String(s) => format!("{s:?}"),
        MetaValue::U8(v) => v.to_string(),
        MetaValue::I8(v) => v.to_string(),
        MetaValue::U16(v) => v.to_string(),
        MetaValue::I16(v) => v.to_string(),
        MetaValue::U32(v) => v.to_string(),
        MetaValue::I32(v) => v.to_string(),
        MetaValue::U64(v) => v.to_string(),
        MetaValue::I64(v) => v.to_string(),
        MetaValue::F32(v) => v.to_string(),
        MetaValue::F64(v) => v.to_string(),
        MetaValue::Bool(v) => v.to_string(),
    })
}
