//! What the user wrote, parsed: the struct under `#[lazy_module]` and the impl block under
//! `#[strategy]`. Items of the wrong shape (enum, union, tuple struct, trait impl) are
//! reported here, because there is nothing further to read from them.

use crate::attr::{self, FieldAttr};
use crate::ctxt::Ctxt;
use proc_macro2::TokenStream;
use syn::{Attribute, Generics, Ident, ImplItemFn, ItemImpl, Type, Visibility};

/// A struct under `#[lazy_module]`.
pub struct Module {
    /// Attributes on the struct (kept).
    pub attrs: Vec<Attribute>,
    /// Its visibility.
    pub vis: Visibility,
    /// Its name.
    pub ident: Ident,
    /// Its generics (rejected by validation).
    pub generics: Generics,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// A named field.
pub struct Field {
    /// Its name.
    pub ident: Ident,
    /// Its visibility.
    pub vis: Visibility,
    /// Its type.
    pub ty: Type,
    /// Attributes that are not ours (kept).
    pub other_attrs: Vec<Attribute>,
    /// Our attributes.
    pub ours: Vec<FieldAttr>,
    /// Whether an unknown attribute close to ours was reported (no further role error).
    pub near_miss: bool,
}

/// Reads the struct, or reports why this item cannot be a module.
pub fn module(cx: &mut Ctxt, args: TokenStream, item: &syn::Item) -> Option<Module> {
    if !args.is_empty() {
        cx.error_spanned(
            &args,
            "#[lazy_module] takes no arguments; keys and shapes go on the fields",
        );
    }
    let s = match item {
        syn::Item::Struct(s) => s,
        syn::Item::Enum(e) => {
            cx.error_spanned(
                e.enum_token,
                "#[lazy_module] goes on a struct with named fields, not an enum: a module is \
                 its weights and submodules, all at once",
            );
            return None;
        }
        syn::Item::Union(u) => {
            cx.error_spanned(
                u.union_token,
                "#[lazy_module] goes on a struct with named fields, not a union",
            );
            return None;
        }
        other => {
            cx.error_spanned(other, "#[lazy_module] goes on a struct with named fields");
            return None;
        }
    };
    let named = match &s.fields {
        syn::Fields::Named(named) => named,
        syn::Fields::Unnamed(unnamed) => {
            cx.error_spanned(
                unnamed,
                "#[lazy_module] needs named fields: a field's name is its path in the module \
                 tree; write `struct Name { field: Weight, ... }`",
            );
            return None;
        }
        syn::Fields::Unit => {
            cx.error_spanned(
                &s.ident,
                "#[lazy_module] needs named fields: write `struct Name { field: Weight, ... }`",
            );
            return None;
        }
    };
    let fields = named
        .named
        .iter()
        .map(|f| {
            let (ours, other_attrs, near_miss) = attr::field_attrs(cx, &f.attrs);
            Field {
                ident: f.ident.clone().expect("named fields have names"),
                vis: f.vis.clone(),
                ty: f.ty.clone(),
                other_attrs,
                ours,
                near_miss,
            }
        })
        .collect();
    Some(Module {
        attrs: s.attrs.clone(),
        vis: s.vis.clone(),
        ident: s.ident.clone(),
        generics: s.generics.clone(),
        fields,
    })
}

/// An impl block under `#[strategy]`.
pub struct Strategy {
    /// The block as written (emitted unchanged).
    pub item: ItemImpl,
    /// The modes, as written.
    pub modes: Vec<Ident>,
    /// `via = method`: the one method every mode runs, with its mode as first argument.
    pub via: Option<Ident>,
}

impl Strategy {
    /// The method that runs `mode`: the `via` method if there is one, else the one named
    /// after the mode.
    pub fn mode_method(&self, mode: &Ident) -> Option<&ImplItemFn> {
        self.method(self.via.as_ref().unwrap_or(mode))
    }

    /// The block's method named `name`.
    pub fn method(&self, name: &Ident) -> Option<&ImplItemFn> {
        self.item.items.iter().find_map(|i| match i {
            syn::ImplItem::Fn(f) if f.sig.ident == *name => Some(f),
            _ => None,
        })
    }
}

/// Reads the mode list and the impl block.
pub fn strategy(cx: &mut Ctxt, args: TokenStream, item: &syn::Item) -> Option<Strategy> {
    let (modes, via) = match attr::strategy_modes(args) {
        Ok(m) => m,
        Err(e) => {
            cx.push(e);
            return None;
        }
    };
    match item {
        syn::Item::Impl(i) => {
            if let Some((_, path, _)) = &i.trait_ {
                cx.error_spanned(
                    path,
                    "#[strategy] goes on an inherent impl block (`impl Module { ... }`), not a \
                     trait impl",
                );
                return None;
            }
            Some(Strategy {
                item: i.clone(),
                modes,
                via,
            })
        }
        other => {
            cx.error_spanned(
                other,
                "#[strategy] goes on the impl block of a #[lazy_module] struct: \
                 #[strategy(prefill, decode)] impl Module { fn prefill(..) fn decode(..) }",
            );
            None
        }
    }
}
