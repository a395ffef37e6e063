//! What is emitted when the input has errors: the item itself (our attributes removed) and
//! stub impls, so that the user sees our error and not a cascade of missing items.

use crate::ast::Module;
use crate::expand;
use proc_macro2::TokenStream;
use quote::quote;

/// A struct that failed validation: its definition, accessors and stub trait impls.
pub fn module(m: &Module) -> TokenStream {
    let ident = &m.ident;
    let (impl_generics, ty_generics, where_clause) = m.generics.split_for_impl();
    let struct_def = expand::struct_def(m);
    let accessors = if m.generics.params.is_empty() {
        expand::accessors(m, false)
    } else {
        TokenStream::new()
    };
    let unreachable = quote!(::core::unreachable!("#[lazy_module] reported an error"));
    // `bind` exists too, so that code calling it reports nothing more; the config type is
    // the #[config] field's when that parsed.
    let config_ty = m
        .fields
        .iter()
        .find(|f| matches!(crate::valid::role(f), Some(crate::attr::Role::Config)))
        .map_or_else(
            || quote!(()),
            |f| {
                let ty = &f.ty;
                quote!(#ty)
            },
        );
    let bind = if m.generics.params.is_empty() {
        quote! {
            impl ::lazyforge::module::Bind for #ident {
                type Config = #config_ty;
                fn bind(
                    _: Self::Config,
                    _: &::lazyforge::module::Scope<'_>,
                ) -> ::lazyforge::Result<Self> {
                    #unreachable
                }
            }
        }
    } else {
        TokenStream::new()
    };
    quote! {
        #struct_def
        #accessors
        const _: () = {
            impl #impl_generics ::lazyforge::module::LazyModule for #ident #ty_generics #where_clause {
                fn type_name(&self) -> &'static str { #unreachable }
                fn state(&self) -> &::lazyforge::module::ModuleState { #unreachable }
                fn config_json(&self) -> ::lazyforge::module::__private::Value { #unreachable }
                fn own_weights(&self) -> ::std::vec::Vec<&::lazyforge::module::Weight> { #unreachable }
                fn own_weights_mut(&mut self) -> ::std::vec::Vec<&mut ::lazyforge::module::Weight> { #unreachable }
                fn children(&self) -> ::std::vec::Vec<&dyn ::lazyforge::module::LazyModule> { #unreachable }
                fn children_mut(&mut self) -> ::std::vec::Vec<&mut dyn ::lazyforge::module::LazyModule> { #unreachable }
            }
            #bind
        };
    }
}

/// An item that is not a struct with named fields: emitted with our field attributes
/// removed, so that rustc does not also report them as unknown.
pub fn item(item: &syn::Item) -> TokenStream {
    let mut item = item.clone();
    let strip = |fields: &mut syn::Fields| {
        for f in fields.iter_mut() {
            f.attrs.retain(|a| {
                !a.path()
                    .get_ident()
                    .is_some_and(|i| crate::attr::FIELD_ATTRS.contains(&i.to_string().as_str()))
            });
        }
    };
    match &mut item {
        syn::Item::Struct(s) => strip(&mut s.fields),
        syn::Item::Enum(e) => e.variants.iter_mut().for_each(|v| strip(&mut v.fields)),
        syn::Item::Union(u) => {
            let mut fields = syn::Fields::Named(u.fields.clone());
            strip(&mut fields);
            if let syn::Fields::Named(named) = fields {
                u.fields = named;
            }
        }
        _ => {}
    }
    quote!(#item)
}
