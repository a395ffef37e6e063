//! A module tree as data: the spec (JSON that binds again) and the summary (text for people).

use super::{Bind, LazyModule, Scope, Weight};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::lazy::Checkpoint;
use serde_json::{json, Value};
use std::fmt::Write as _;

fn weight_spec(w: &Weight) -> Value {
    json!({
        "field": w.field(),
        "path": w.path(),
        "key": w.key(),
        "shape": w.shape(),
        "dtype": w.dtype(),
        "device": w.device().to_string(),
        "params": w.parameter_count(),
        "bytes": w.resident_bytes(),
    })
}

pub(super) fn spec_of<M: LazyModule + ?Sized>(module: &M) -> Value {
    let state = module.state();
    json!({
        "module": module.type_name(),
        "path": state.path(),
        "prefix": state.prefix(),
        "device": state.device().to_string(),
        "config": module.config_json(),
        "weights": module.own_weights().into_iter().map(weight_spec).collect::<Vec<_>>(),
        "children": module.children().into_iter().map(spec_of).collect::<Vec<_>>(),
    })
}

pub(super) fn bind_spec<M: Bind>(spec: &Value, checkpoint: &Checkpoint) -> Result<M> {
    let field = |name: &str| {
        spec.get(name)
            .ok_or_else(|| Error::Spec(format!("no '{name}' field")))
    };
    let text = |name: &str| {
        field(name)?
            .as_str()
            .ok_or_else(|| Error::Spec(format!("'{name}' is not a string")))
    };
    let device: Device = text("device")?.parse()?;
    let config: M::Config = serde_json::from_value(field("config")?.clone())
        .map_err(|e| Error::Spec(format!("config: {e}")))?;
    let scope = Scope::root(checkpoint, device).at(text("path")?, text("prefix")?);
    let module = M::bind(config, &scope)?;
    if module.type_name() != text("module")? {
        return Err(Error::Spec(format!(
            "spec is of module {}, not {}",
            text("module")?,
            module.type_name()
        )));
    }
    let again = module.spec();
    if &again != spec {
        return Err(Error::Spec(first_difference(spec, &again, "")));
    }
    Ok(module)
}

/// Where two specs first differ, as `path: spec has X, checkpoint gives Y`.
fn first_difference(want: &Value, got: &Value, at: &str) -> String {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) if w == v => {}
                    Some(w) => return first_difference(v, w, &format!("{at}/{k}")),
                    None => return format!("{at}/{k}: missing after binding"),
                }
            }
            format!("{at}: unexpected fields after binding")
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                if v != w {
                    return first_difference(v, w, &format!("{at}/{i}"));
                }
            }
            format!("{at}: differs")
        }
        _ => format!("{at}: spec has {want}, checkpoint gives {got}"),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn human_time(t: std::time::Duration) -> String {
    let s = t.as_secs_f64();
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

pub(super) fn write_summary<M: LazyModule + ?Sized>(module: &M, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let weights = module.all_weights();
    let loaded = weights.iter().filter(|w| w.is_materialized()).count();
    let path = match module.path() {
        "" => "<root>",
        p => p,
    };
    let _ = writeln!(
        out,
        "{indent}{path}: {}  {} params, {}, {loaded}/{} materialized",
        module.type_name(),
        module.parameter_count(),
        human_bytes(module.total_bytes()),
        weights.len(),
    );
    if depth == 0 {
        let r = module.residency().stats();
        let budget = r.budget.map_or("unlimited".to_string(), human_bytes);
        let _ = writeln!(
            out,
            "{indent}  residency on {}: budget {budget}, resident {} (peak {}), {} loads, \
             {} reloads, {} evictions, {} over budget, load {}, page faults {}",
            module.residency().device(),
            human_bytes(r.resident_bytes),
            human_bytes(r.peak_resident_bytes),
            r.loads.loads,
            r.loads.reloads,
            r.loads.evictions,
            r.over_budget,
            human_time(r.loads.load_time()),
            human_time(r.loads.fault_time()),
        );
    }
    for w in module.own_weights() {
        let stats = w.stats();
        let mut state = if w.is_materialized() {
            format!("materialized in {}", human_time(stats.load_time()))
        } else if stats.evictions > 0 {
            "evicted".to_string()
        } else {
            "lazy".to_string()
        };
        if stats.loads > 0 {
            let _ = write!(
                state,
                " ({} loads, {} reloads, {} evictions, {} hits, page faults {})",
                stats.loads,
                stats.reloads,
                stats.evictions,
                stats.hits,
                human_time(stats.fault_time())
            );
        }
        let _ = writeln!(
            out,
            "{indent}  {} = '{}'  {:?} {} on {}  {} params, {}, {state}",
            w.path(),
            w.key(),
            w.shape(),
            w.dtype(),
            w.device(),
            w.parameter_count(),
            human_bytes(w.resident_bytes()),
        );
    }
    for child in module.children() {
        write_summary(child, depth + 1, out);
    }
}
