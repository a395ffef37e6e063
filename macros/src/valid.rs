//! Every rule, checked: what `#[lazy_module]` and `#[strategy]` accept. Expansion assumes
//! these hold and never checks again.

use crate::ast::{Field, Module, Strategy};
use crate::attr::{Role, SubmodulesAttr, WeightAttr};
use crate::ctxt::{suggestion, Ctxt};
use proc_macro2::Span;
use quote::ToTokens;
use std::collections::HashMap;
use syn::{Expr, FnArg, Ident, ReturnType, Type};

/// The dtype names a `dtype = ...` constraint may use (lazyforge's `DType` variants).
pub const DTYPES: &[&str] = &[
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
    "Q6_K", "Q8_K",
];

/// The field's role, when it has exactly one attribute of ours and that attribute parsed.
pub fn role(field: &Field) -> Option<&Role> {
    match field.ours.as_slice() {
        [one] => one.role.as_ref(),
        _ => None,
    }
}

/// `T` when `ty` is `Name<T>` (last path segment named `name`).
pub fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
            match args.args.first()? {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `ty` is `Weight` (any path ending in it, without arguments).
fn is_weight(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Weight" && s.arguments.is_empty()))
}

/// Checks a `#[lazy_module]` struct.
pub fn module(cx: &mut Ctxt, m: &Module) {
    if !m.generics.params.is_empty() || m.generics.where_clause.is_some() {
        cx.error_spanned(
            &m.generics,
            "#[lazy_module] does not support generic parameters: a module binds concrete \
             weights; use concrete field types (and a #[config] field for sizes)",
        );
    }
    let mut config: Option<&Ident> = None;
    for field in &m.fields {
        match field.ours.as_slice() {
            [] if !field.near_miss => cx.error_spanned(
                &field.ident,
                format!(
                    "field `{}` has no role: mark it #[config], #[weight(\"key\", shape = [..])], \
                     #[submodule(\"prefix\")], #[submodules(\"blk.{{i}}\", count = ..)] or #[state]",
                    field.ident
                ),
            ),
            [_, second, ..] => cx.error_spanned(
                &second.attr,
                format!(
                    "field `{}` has two roles; a field is one of config, weight, submodule, \
                     submodules or state",
                    field.ident
                ),
            ),
            _ => {}
        }
        if let Some(Role::Config) = role(field) {
            match config {
                Some(first) => cx.error_spanned(
                    &field.ident,
                    format!(
                        "`{first}` is already this module's #[config] field, and a module has \
                         one: group the settings in one struct (or a tuple)"
                    ),
                ),
                None => config = Some(&field.ident),
            }
        }
    }
    let mut keys: HashMap<String, &Ident> = HashMap::new();
    for field in &m.fields {
        match role(field) {
            Some(Role::Weight(w)) => {
                weight(cx, field, w, config);
                let key = w.key.value();
                if let Some(first) = keys.get(&key) {
                    cx.error_spanned(
                        &w.key,
                        format!(
                            "key \"{key}\" is already bound to field `{first}`; each checkpoint \
                             key binds one weight (for a shared tensor, use `fallback`)"
                        ),
                    );
                } else {
                    keys.insert(key, &field.ident);
                }
            }
            Some(Role::Submodule(_))
                if generic_arg(&field.ty, "Vec").is_some()
                    || generic_arg(&field.ty, "Option").is_some() =>
            {
                cx.error_spanned(
                    &field.ty,
                    "a #[submodule] field holds one module; for a list of modules write \
                     #[submodules(\"blk.{i}\", count = ..)] on a `Vec<Module>` field",
                );
            }
            Some(Role::Submodules(s)) => submodules(cx, field, s),
            _ => {}
        }
    }
}

fn weight(cx: &mut Ctxt, field: &Field, w: &WeightAttr, config: Option<&Ident>) {
    let option = generic_arg(&field.ty, "Option");
    match (&w.optional, option) {
        (Some(_), Some(inner)) if is_weight(inner) => {}
        (Some(flag), _) => cx.error_spanned(
            &field.ty,
            format!(
                "an `{flag}` weight is an `Option<Weight>` (None when the checkpoint lacks it); \
                 found `{}`",
                pretty(&field.ty.to_token_stream().to_string())
            ),
        ),
        (None, Some(inner)) if is_weight(inner) => cx.error_spanned(
            &field.ty,
            "an `Option<Weight>` field needs `optional` in its attribute: \
             #[weight(\"key\", shape = [..], optional)]",
        ),
        (None, _) if is_weight(&field.ty) => {}
        (None, _) => cx.error_spanned(
            &field.ty,
            format!(
                "a #[weight] field has type `Weight` (the lazy handle), found `{}`; read the \
                 tensor in forward code with `self.{}()?`",
                pretty(&field.ty.to_token_stream().to_string()),
                field.ident
            ),
        ),
    }
    let key = w.key.value();
    if key.is_empty() || key.contains('{') {
        cx.error_spanned(
            &w.key,
            "a weight key is the tensor's name relative to the module's prefix, as in \"attn_q.weight\"",
        );
    }
    if let Some(fallback) = &w.fallback {
        if fallback.value() == key {
            cx.error_spanned(
                fallback,
                "the fallback key is the weight's own key; name another tensor",
            );
        }
    }
    match &w.shape {
        None if w.had_unknown_key => {}
        None => cx.error_spanned(
            &field.ours[0].attr,
            format!(
                "#[weight(\"{key}\")] needs its shape, outermost first: \
                 #[weight(\"{key}\", shape = [cfg.rows, cfg.cols])]"
            ),
        ),
        Some((_, dims)) => {
            for dim in dims {
                shape_roots(cx, dim, config);
            }
        }
    }
    for d in &w.dtypes {
        let name = d.to_string().to_uppercase();
        if !DTYPES.contains(&name.as_str()) {
            cx.error_spanned(
                d,
                format!("unknown dtype `{d}`; {}", suggestion(&name, DTYPES)),
            );
        }
    }
    if let Some(device) = &w.device {
        if device != "host" {
            cx.error_spanned(
                device,
                "the only placement override is `device = host`; without it a weight goes on \
                 the module's device",
            );
        }
    }
}

/// Shapes are computed at bind time from the config: a field access must start at the
/// `#[config]` field.
fn shape_roots(cx: &mut Ctxt, dim: &Expr, config: Option<&Ident>) {
    let mut base = dim;
    let mut accessed = false;
    loop {
        match base {
            Expr::Field(f) => {
                base = &f.base;
                accessed = true;
            }
            Expr::MethodCall(m) => {
                base = &m.receiver;
                accessed = true;
            }
            Expr::Paren(p) => base = &p.expr,
            Expr::Binary(b) => {
                shape_roots(cx, &b.left, config);
                shape_roots(cx, &b.right, config);
                return;
            }
            _ => break,
        }
    }
    if !accessed {
        return;
    }
    let root = match base {
        Expr::Path(p) if p.qself.is_none() => match p.path.get_ident() {
            Some(i) => i,
            None => return,
        },
        _ => return,
    };
    match config {
        Some(c) if root == c => {}
        Some(c) => cx.error_spanned(
            root,
            format!(
                "shapes are written over the #[config] field `{c}`, not `{root}`: \
                 shape = [{c}.rows, {c}.cols]"
            ),
        ),
        None => cx.error_spanned(
            root,
            format!(
                "this shape reads `{root}`, but the module has no #[config] field; add one, as in \
                 `#[config] {root}: MyConfig`"
            ),
        ),
    }
}

fn submodules(cx: &mut Ctxt, field: &Field, s: &SubmodulesAttr) {
    if generic_arg(&field.ty, "Vec").is_none() {
        cx.error_spanned(
            &field.ty,
            format!(
                "a #[submodules] field is a `Vec` of modules, found `{}`",
                pretty(&field.ty.to_token_stream().to_string())
            ),
        );
    }
    match &s.pattern {
        None => cx.error_spanned(
            &s.attr,
            "#[submodules] needs an indexed key prefix and a count: \
             #[submodules(\"blk.{i}\", count = cfg.n_layers)]",
        ),
        Some(p) => {
            if p.value().matches("{i}").count() != 1 {
                cx.error_spanned(
                    p,
                    "the prefix of a module list holds `{i}` once, where the index goes: \"blk.{i}\"",
                );
            }
            if s.count.is_none() && !s.had_unknown_key {
                cx.error_spanned(
                    &s.attr,
                    format!(
                        "#[submodules] needs a count: #[submodules(\"{}\", count = cfg.n_layers)]",
                        p.value()
                    ),
                );
            }
        }
    }
}

/// Checks a `#[strategy]` impl block.
pub fn strategy(cx: &mut Ctxt, s: &Strategy) {
    if s.modes.is_empty() {
        cx.push(syn::Error::new(
            Span::call_site(),
            "#[strategy] needs at least one mode: #[strategy(prefill, decode)] or \
             #[strategy(unified)]",
        ));
    }
    for (i, mode) in s.modes.iter().enumerate() {
        if s.modes[..i].contains(mode) {
            cx.error_spanned(mode, format!("mode `{mode}` is listed twice"));
        }
    }
    if !s.item.generics.params.is_empty() {
        cx.error_spanned(
            &s.item.generics,
            "#[strategy] does not support generic impl blocks (nor does #[lazy_module])",
        );
    }
    if !matches!(&*s.item.self_ty, Type::Path(_)) {
        cx.error_spanned(&s.item.self_ty, "#[strategy] goes on `impl Module { ... }`");
    }
    for item in &s.item.items {
        if let syn::ImplItem::Fn(f) = item {
            let name = f.sig.ident.to_string();
            let generated =
                name == "forward" || s.modes.iter().any(|m| name == format!("forward_{m}"));
            if generated {
                cx.error_spanned(
                    &f.sig.ident,
                    format!("#[strategy] generates `{name}`; rename this method"),
                );
            }
        }
    }
    if let Some(via) = &s.via {
        return strategy_via(cx, s, via);
    }
    let mut first: Option<&syn::Signature> = None;
    for mode in &s.modes {
        let Some(method) = s.method(mode) else {
            cx.error_spanned(
                mode,
                format!(
                    "no method `{mode}` in this impl block: #[strategy(.., {mode})] runs \
                     `fn {mode}(&self, ..) -> Result<..>`"
                ),
            );
            continue;
        };
        let sig = &method.sig;
        receiver_and_result(cx, &format!("mode `{mode}`"), sig);
        match first {
            None => first = Some(sig),
            Some(f) => same_signature(cx, f, sig),
        }
    }
}

/// `via = method`: the method exists, takes `&self` and the mode first, returns a `Result`,
/// and no method is named after a mode (which would read as if it ran).
fn strategy_via(cx: &mut Ctxt, s: &Strategy, via: &Ident) {
    for mode in &s.modes {
        if let Some(m) = s.method(mode) {
            cx.error_spanned(
                &m.sig.ident,
                format!(
                    "every mode runs `{via}` (`via = {via}`), so `fn {mode}` would never run \
                     as mode `{mode}`: rename it, or drop `via` and write one method per mode"
                ),
            );
        }
    }
    let Some(method) = s.method(via) else {
        cx.error_spanned(
            via,
            format!(
                "no method `{via}` in this impl block: `via = {via}` runs \
                 `fn {via}(&self, mode: ExecutionMode, ..) -> Result<..>` for every mode"
            ),
        );
        return;
    };
    let sig = &method.sig;
    receiver_and_result(cx, &format!("`{via}`"), sig);
    let mode_arg = sig.inputs.iter().find_map(|a| match a {
        FnArg::Typed(t) => Some(t),
        FnArg::Receiver(_) => None,
    });
    let is_mode = |ty: &Type| matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "ExecutionMode"));
    if !mode_arg.is_some_and(|t| is_mode(&t.ty)) {
        cx.error_spanned(
            &sig.inputs,
            format!(
                "`{via}` takes the mode it runs as its first argument after `&self`: \
                 `fn {via}(&self, mode: ExecutionMode, ..)`"
            ),
        );
    }
}

/// A mode's method takes `&self` and returns a `Result`.
fn receiver_and_result(cx: &mut Ctxt, what: &str, sig: &syn::Signature) {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(FnArg::Receiver(r)) => cx.error_spanned(
            r,
            format!("{what} takes `&self`: forward takes the module shared, so one model serves many threads"),
        ),
        _ => cx.error_spanned(
            &sig.ident,
            format!("{what} is a method: write `fn {}(&self, ..)`", sig.ident),
        ),
    }
    match &sig.output {
        ReturnType::Default => cx.error_spanned(
            &sig.ident,
            format!(
                "{what} returns a `Result` (loading a weight can fail): \
                 `-> Result<Tensor>`"
            ),
        ),
        ReturnType::Type(_, ty) if !returns_result(ty) => cx.error_spanned(
            ty,
            format!(
                "{what} returns a `Result` (loading a weight can fail), found `{}`",
                pretty(&ty.to_token_stream().to_string())
            ),
        ),
        ReturnType::Type(..) => {}
    }
}

/// Whether `ty` is a `Result` (any path ending in `Result`, such as `lazyforge::Result<T>`).
fn returns_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// Every mode has the signature of the first, so that `forward(mode, ..)` can dispatch.
fn same_signature(cx: &mut Ctxt, first: &syn::Signature, sig: &syn::Signature) {
    let text = |t: &dyn ToTokens| pretty(&t.to_token_stream().to_string());
    let args = |s: &syn::Signature| -> Vec<Type> {
        s.inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => Some((*t.ty).clone()),
                FnArg::Receiver(_) => None,
            })
            .collect()
    };
    let (a, b) = (args(first), args(sig));
    let why = format!(
        "modes of one strategy share a signature so that `forward(mode, ..)` can dispatch; \
         `{}` is `fn {}({})`",
        first.ident,
        first.ident,
        pretty(&first.inputs.to_token_stream().to_string())
    );
    if a.len() != b.len() {
        cx.error_spanned(
            &sig.inputs,
            format!(
                "`{}` takes {} argument(s) after `&self`, `{}` takes {}: {why}",
                sig.ident,
                b.len(),
                first.ident,
                a.len()
            ),
        );
        return;
    }
    for (x, y) in a.iter().zip(&b) {
        if text(x) != text(y) {
            cx.error_spanned(
                y,
                format!(
                    "`{}` takes `{}` here, `{}` takes `{}`: {why}",
                    sig.ident,
                    text(y),
                    first.ident,
                    text(x)
                ),
            );
            return;
        }
    }
    if text(&first.output) != text(&sig.output) || text(&first.generics) != text(&sig.generics) {
        cx.error_spanned(
            &sig.output,
            format!(
                "`{}` returns `{}`, `{}` returns `{}`: modes of one strategy return the same type",
                sig.ident,
                text(&sig.output),
                first.ident,
                text(&first.output)
            ),
        );
    }
}

/// Rust code as people write it, from a token stream's spaced-out text.
pub fn pretty(tokens: &str) -> String {
    let mut s = tokens.to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        ("& ", "&"),
        (" ,", ","),
        (" ;", ";"),
        (" :: ", "::"),
        (":: ", "::"),
        (" : ", ": "),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        ("-> ", "-> "),
        ("' ", "'"),
    ] {
        s = s.replace(from, to);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::pretty;
    use quote::quote;

    #[test]
    fn prints_types_as_people_write_them() {
        let ty = quote!(&'a mut std::vec::Vec<Option<[f32; 4]>>).to_string();
        assert_eq!(pretty(&ty), "&'a mut std::vec::Vec<Option<[f32; 4]>>");
        let sig = quote!(&self, x: &Tensor, cache: &mut KvCache).to_string();
        assert_eq!(pretty(&sig), "&self, x: &Tensor, cache: &mut KvCache");
    }
}
