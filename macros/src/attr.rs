//! Our attributes, parsed: the field roles of `#[lazy_module]` and the mode list of
//! `#[strategy]`. Parsing records what was written; whether it is allowed is `valid.rs`'s job.

use crate::ctxt::{suggestion, Ctxt};
use proc_macro2::TokenStream;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, Attribute, Expr, Ident, LitStr, Token};

/// The field attributes `#[lazy_module]` reads.
pub const FIELD_ATTRS: &[&str] = &["config", "weight", "submodule", "submodules", "state"];
/// Keys of `#[weight(...)]`.
pub const WEIGHT_KEYS: &[&str] = &["shape", "dtype", "optional", "fallback", "device"];
/// Keys of `#[submodule(...)]`.
pub const SUBMODULE_KEYS: &[&str] = &["config"];
/// Keys of `#[submodules(...)]`.
pub const SUBMODULES_KEYS: &[&str] = &["count", "config"];

/// What a field is, by its attribute.
pub enum Role {
    /// `#[config]`: the module's config, used by shapes and forward code.
    Config,
    /// `#[state]`: plain per-module state, `Default`-initialized at bind.
    State,
    /// `#[weight("key", ...)]`.
    Weight(Box<WeightAttr>),
    /// `#[submodule("prefix")]`.
    Submodule(SubmoduleAttr),
    /// `#[submodules("blk.{i}", count = ...)]`.
    Submodules(Box<SubmodulesAttr>),
}

/// `#[weight("key", shape = [...], dtype = ..., optional, fallback = "...", device = host)]`.
pub struct WeightAttr {
    /// The checkpoint key, relative to the module's scope.
    pub key: LitStr,
    /// `shape = [d0, d1, ...]`, with the `shape` keyword for spans.
    pub shape: Option<(Ident, Vec<Expr>)>,
    /// `dtype = F32` or `dtype = [F16, F32]`.
    pub dtypes: Vec<Ident>,
    /// The `optional` flag.
    pub optional: Option<Ident>,
    /// `fallback = "other.key"`.
    pub fallback: Option<LitStr>,
    /// `device = host`.
    pub device: Option<Ident>,
    /// Whether an unknown key was reported (then a missing shape is not reported too: the
    /// unknown key is likely a misspelled `shape`).
    pub had_unknown_key: bool,
}

/// `#[submodule]` or `#[submodule("prefix", config = expr)]`.
pub struct SubmoduleAttr {
    /// Key prefix; `None` binds the child in the parent's scope.
    pub prefix: Option<LitStr>,
    /// The child's config; by default the parent's, converted with `Into`.
    pub config: Option<Expr>,
}

/// `#[submodules("blk.{i}", count = expr, config = expr)]`.
pub struct SubmodulesAttr {
    /// The indexed key prefix.
    pub pattern: Option<LitStr>,
    /// How many.
    pub count: Option<Expr>,
    /// Each child's config.
    pub config: Option<Expr>,
    /// The attribute, for spans of missing parts.
    pub attr: Attribute,
    /// Whether an unknown key was reported (then a missing count is not reported too).
    pub had_unknown_key: bool,
}

/// One of our attributes found on a field.
pub struct FieldAttr {
    /// The attribute as written (for spans).
    pub attr: Attribute,
    /// What it says, if it parsed.
    pub role: Option<Role>,
}

/// Splits a field's attributes into ours (parsed) and the others (kept as they are).
/// An unknown attribute that is a near miss of ours is reported with the suggestion.
pub fn field_attrs(cx: &mut Ctxt, attrs: &[Attribute]) -> (Vec<FieldAttr>, Vec<Attribute>, bool) {
    let mut ours = Vec::new();
    let mut others = Vec::new();
    let mut near_miss = false;
    for attr in attrs {
        let Some(name) = attr.path().get_ident().map(Ident::to_string) else {
            others.push(attr.clone());
            continue;
        };
        if !FIELD_ATTRS.contains(&name.as_str()) {
            if let Some(near) = crate::ctxt::nearest(&name, FIELD_ATTRS) {
                cx.error_spanned(
                    attr.path(),
                    format!("unknown attribute `#[{name}]` on a #[lazy_module] field; did you mean `#[{near}]`?"),
                );
                near_miss = true;
            } else {
                others.push(attr.clone());
            }
            continue;
        }
        let role = match name.as_str() {
            "config" => flag_attr(cx, attr).then_some(Role::Config),
            "state" => flag_attr(cx, attr).then_some(Role::State),
            "weight" => weight_attr(cx, attr).map(|w| Role::Weight(Box::new(w))),
            "submodule" => submodule_attr(cx, attr).map(Role::Submodule),
            _ => submodules_attr(cx, attr).map(|s| Role::Submodules(Box::new(s))),
        };
        ours.push(FieldAttr {
            attr: attr.clone(),
            role,
        });
    }
    (ours, others, near_miss)
}

/// `#[config]` and `#[state]` take no arguments.
fn flag_attr(cx: &mut Ctxt, attr: &Attribute) -> bool {
    match &attr.meta {
        syn::Meta::Path(_) => true,
        other => {
            let name = attr
                .path()
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            cx.error_spanned(
                other,
                format!("`#[{name}]` takes no arguments; write `#[{name}]`"),
            );
            false
        }
    }
}

/// Parses `key = value` pairs after a leading literal, calling `entry` for each key; unknown
/// keys are reported (with the nearest valid one) and their values skipped.
fn parse_entries(
    input: ParseStream,
    unknown: &mut Vec<syn::Error>,
    attr_name: &str,
    keys: &[&str],
    mut entry: impl FnMut(&Ident, ParseStream) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        let name = key.to_string();
        if keys.contains(&name.as_str()) {
            entry(&key, input)?;
        } else {
            unknown.push(syn::Error::new(
                key.span(),
                format!(
                    "unknown key `{name}` in #[{attr_name}]; {}",
                    suggestion(&name, keys)
                ),
            ));
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                input.parse::<Expr>()?;
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

fn leading_lit(input: ParseStream, what: &str, example: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        Ok(lit)
    } else {
        Err(input.error(format!(
            "expected the {what} as a string first, as in {example}"
        )))
    }
}

fn value<T: syn::parse::Parse>(input: ParseStream) -> syn::Result<T> {
    input.parse::<Token![=]>()?;
    input.parse()
}

fn weight_attr(cx: &mut Ctxt, attr: &Attribute) -> Option<WeightAttr> {
    let mut unknown = Vec::new();
    let parsed = attr.parse_args_with(|input: ParseStream| {
        let key = leading_lit(
            input,
            "checkpoint key",
            "#[weight(\"attn_q.weight\", shape = [cfg.hidden, cfg.hidden])]",
        )?;
        let mut w = WeightAttr {
            key,
            shape: None,
            dtypes: Vec::new(),
            optional: None,
            fallback: None,
            device: None,
            had_unknown_key: false,
        };
        parse_entries(input, &mut unknown, "weight", WEIGHT_KEYS, |k, input| {
            match k.to_string().as_str() {
                "shape" => {
                    input.parse::<Token![=]>()?;
                    let content;
                    bracketed!(content in input);
                    let dims = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
                    w.shape = Some((k.clone(), dims.into_iter().collect()));
                }
                "dtype" => {
                    input.parse::<Token![=]>()?;
                    if input.peek(syn::token::Bracket) {
                        let content;
                        bracketed!(content in input);
                        let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                        w.dtypes = list.into_iter().collect();
                    } else {
                        w.dtypes = vec![input.parse()?];
                    }
                }
                "optional" => w.optional = Some(k.clone()),
                "fallback" => w.fallback = Some(value(input)?),
                _ => w.device = Some(value(input)?),
            }
            Ok(())
        })?;
        Ok(w)
    });
    let parsed = parsed.map(|mut w| {
        w.had_unknown_key = !unknown.is_empty();
        w
    });
    unknown.into_iter().for_each(|e| cx.push(e));
    parsed.map_err(|e| cx.push(e)).ok()
}

fn submodule_attr(cx: &mut Ctxt, attr: &Attribute) -> Option<SubmoduleAttr> {
    if let syn::Meta::Path(_) = attr.meta {
        return Some(SubmoduleAttr {
            prefix: None,
            config: None,
        });
    }
    let mut unknown = Vec::new();
    let parsed = attr.parse_args_with(|input: ParseStream| {
        let prefix = if input.peek(LitStr) {
            Some(leading_lit(input, "key prefix", "#[submodule(\"attn\")]")?)
        } else {
            None
        };
        let mut config = None;
        parse_entries(
            input,
            &mut unknown,
            "submodule",
            SUBMODULE_KEYS,
            |_, input| {
                config = Some(value(input)?);
                Ok(())
            },
        )?;
        Ok(SubmoduleAttr { prefix, config })
    });
    unknown.into_iter().for_each(|e| cx.push(e));
    parsed.map_err(|e| cx.push(e)).ok()
}

fn submodules_attr(cx: &mut Ctxt, attr: &Attribute) -> Option<SubmodulesAttr> {
    let mut unknown = Vec::new();
    let parsed = match &attr.meta {
        syn::Meta::Path(_) => Ok(SubmodulesAttr {
            pattern: None,
            count: None,
            config: None,
            attr: attr.clone(),
            had_unknown_key: false,
        }),
        _ => attr.parse_args_with(|input: ParseStream| {
            let pattern = leading_lit(
                input,
                "indexed key prefix",
                "#[submodules(\"blk.{i}\", count = cfg.n_layers)]",
            )?;
            let (mut count, mut config) = (None, None);
            parse_entries(
                input,
                &mut unknown,
                "submodules",
                SUBMODULES_KEYS,
                |k, input| {
                    if k == "count" {
                        count = Some(value(input)?);
                    } else {
                        config = Some(value(input)?);
                    }
                    Ok(())
                },
            )?;
            Ok(SubmodulesAttr {
                pattern: Some(pattern),
                count,
                config,
                attr: attr.clone(),
                had_unknown_key: false,
            })
        }),
    };
    let parsed = parsed.map(|mut s| {
        s.had_unknown_key = !unknown.is_empty();
        s
    });
    unknown.into_iter().for_each(|e| cx.push(e));
    parsed.map_err(|e| cx.push(e)).ok()
}

/// `#[strategy(prefill, decode)]` or `#[strategy(prefill, decode, via = run)]`: the modes
/// and the shared method, as written.
pub fn strategy_modes(args: TokenStream) -> syn::Result<(Vec<Ident>, Option<Ident>)> {
    let expected = "expected mode names, as in #[strategy(prefill, decode)] or \
                    #[strategy(unified)], optionally ending with `via = method`";
    let parser = |input: ParseStream| {
        let (mut modes, mut via) = (Vec::new(), None);
        while !input.is_empty() {
            let name: Ident = input.parse()?;
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                if name != "via" || via.is_some() {
                    return Err(syn::Error::new(name.span(), expected));
                }
                via = Some(input.parse::<Ident>()?);
            } else if via.is_some() {
                return Err(syn::Error::new(
                    name.span(),
                    "`via = method` comes after the modes",
                ));
            } else {
                modes.push(name);
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok((modes, via))
    };
    parser
        .parse2(args)
        .map_err(|e| match e.to_string().starts_with('`') {
            true => e,
            false => syn::Error::new(e.span(), expected),
        })
}
