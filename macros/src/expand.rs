//! Code generation for valid input. Generated code names everything by absolute path
//! (`::lazyforge::...`, `::core::...`) and keeps its helpers inside `const _: () = { .. };`.

use crate::ast::{Field, Module, Strategy};
use crate::attr::Role;
use crate::valid::{generic_arg, role};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident};

/// The struct as written (our attributes removed) plus the hidden per-module state.
pub fn struct_def(m: &Module) -> TokenStream {
    let (attrs, vis, ident, generics) = (&m.attrs, &m.vis, &m.ident, &m.generics);
    let where_clause = &generics.where_clause;
    let fields = m.fields.iter().map(|f| {
        let (attrs, vis, ident, ty) = (&f.other_attrs, &f.vis, &f.ident, &f.ty);
        quote!(#(#attrs)* #vis #ident: #ty)
    });
    quote! {
        #(#attrs)*
        #vis struct #ident #generics #where_clause {
            #(#fields,)*
            #[doc(hidden)]
            __lazyforge_module: ::lazyforge::module::ModuleState,
        }
    }
}

fn config_field(m: &Module) -> Option<&Field> {
    m.fields
        .iter()
        .find(|f| matches!(role(f), Some(Role::Config)))
}

/// The accessor of each weight: its device tensor, materialized on first use. Without
/// `bodies` (after an error), stubs with the same signatures.
pub fn accessors(m: &Module, bodies: bool) -> TokenStream {
    let ident = &m.ident;
    let methods = m.fields.iter().filter_map(|f| {
        let (vis, name) = (&f.vis, &f.ident);
        let optional = generic_arg(&f.ty, "Option").is_some();
        match f.ours.first().and_then(|a| a.attr.path().get_ident()) {
            Some(a) if a == "weight" => {}
            _ => return None,
        }
        let doc = format!(
            "The device tensor of weight `{name}`, loaded on first use and pinned while the \
             guard lives."
        );
        let unreachable = quote!(::core::unreachable!("#[lazy_module] reported an error"));
        Some(if !bodies {
            let ret = if optional {
                quote!(::core::option::Option<::lazyforge::lazy::Pinned>)
            } else {
                quote!(::lazyforge::lazy::Pinned)
            };
            quote! {
                #[allow(dead_code)]
                #vis fn #name(&self) -> ::lazyforge::Result<#ret> {
                    #unreachable
                }
            }
        } else if optional {
            quote! {
                #[doc = #doc]
                #[allow(dead_code)]
                #vis fn #name(&self) -> ::lazyforge::Result<::core::option::Option<::lazyforge::lazy::Pinned>> {
                    ::core::option::Option::map(::core::option::Option::as_ref(&self.#name), ::lazyforge::module::Weight::get).transpose()
                }
            }
        } else {
            quote! {
                #[doc = #doc]
                #[allow(dead_code)]
                #vis fn #name(&self) -> ::lazyforge::Result<::lazyforge::lazy::Pinned> {
                    ::lazyforge::module::Weight::get(&self.#name)
                }
            }
        })
    });
    quote! {
        impl #ident {
            #(#methods)*
        }
    }
}

/// Everything `#[lazy_module]` generates for a valid struct.
pub fn module(m: &Module) -> TokenStream {
    let ident = &m.ident;
    let name = ident.to_string();
    let config = config_field(m);
    let config_ty = match config {
        Some(f) => {
            let ty = &f.ty;
            quote!(#ty)
        }
        None => quote!(()),
    };
    let config_ref = match config {
        Some(f) => {
            let c = &f.ident;
            quote! {
                #[allow(unused_variables)]
                let #c = &__lazyforge_config;
            }
        }
        None => quote!(let _ = __lazyforge_config;),
    };
    // A child's config, unless given: the parent's, converted. Spanned on the child's type,
    // where an error about that type belongs.
    let default_child_config = |span: proc_macro2::Span| match config {
        Some(f) => {
            let c = &f.ident;
            quote_spanned!(span=> ::core::convert::Into::into(::core::clone::Clone::clone(#c)))
        }
        None => quote_spanned!(span=> ::core::default::Default::default()),
    };
    let config_json = match config {
        Some(f) => {
            let c = &f.ident;
            quote!(::lazyforge::module::__private::config_json::<Self>(&self.#c))
        }
        None => quote!(::lazyforge::module::__private::Value::Null),
    };

    let mut binds = Vec::new();
    let mut inits = Vec::new();
    let mut weights = Vec::new();
    let mut weights_mut = Vec::new();
    let mut children = Vec::new();
    let mut children_mut = Vec::new();
    let dyn_module = quote!(dyn ::lazyforge::module::LazyModule);
    for f in &m.fields {
        let field = &f.ident;
        let field_name = field.to_string();
        let local = format_ident!("__lazyforge_{}", field);
        let Some(role) = role(f) else { continue };
        let init = match role {
            Role::Config => {
                inits.push(quote!(#field: __lazyforge_config));
                continue;
            }
            Role::State => quote!(::core::default::Default::default()),
            Role::Weight(w) => {
                let key = &w.key;
                let dims = w
                    .shape
                    .as_ref()
                    .expect("validated: weights have shapes")
                    .1
                    .iter()
                    .map(|d| quote_spanned!(d.span()=> ::lazyforge::module::__private::dim(#d)));
                let dtypes = w.dtypes.iter().map(|d| {
                    let v = format_ident!("{}", d.to_string().to_uppercase(), span = d.span());
                    quote!(::lazyforge::DType::#v)
                });
                let fallback = match &w.fallback {
                    Some(k) => quote!(::core::option::Option::Some(#k)),
                    None => quote!(::core::option::Option::None),
                };
                let placement = if w.device.is_some() {
                    quote!(::lazyforge::module::Placement::Host)
                } else {
                    quote!(::lazyforge::module::Placement::Module)
                };
                let method = if w.optional.is_some() {
                    weights.push(quote!(::core::option::Option::as_ref(&self.#field)));
                    weights_mut.push(quote!(::core::option::Option::as_mut(&mut self.#field)));
                    quote!(optional_weight)
                } else {
                    weights.push(quote!(::core::iter::once(&self.#field)));
                    weights_mut.push(quote!(::core::iter::once(&mut self.#field)));
                    quote!(weight)
                };
                quote! {
                    __lazyforge_scope.#method(&::lazyforge::module::WeightDecl {
                        field: #field_name,
                        key: #key,
                        shape: ::std::vec![#(#dims),*],
                        dtypes: &[#(#dtypes),*],
                        fallback: #fallback,
                        placement: #placement,
                    })?
                }
            }
            Role::Submodule(s) => {
                let ty = &f.ty;
                let prefix = s.prefix.as_ref().map_or_else(String::new, |p| p.value());
                let child_config = s
                    .config
                    .as_ref()
                    .map_or_else(|| default_child_config(ty.span()), |c| quote!(#c));
                let (bind, as_dyn, as_dyn_mut) = module_paths(ty);
                children.push(quote!(::core::iter::once(#as_dyn(&self.#field))));
                children_mut.push(quote!(::core::iter::once(#as_dyn_mut(&mut self.#field))));
                quote! {
                    #bind(#child_config, &__lazyforge_scope.child(#field_name, #prefix))?
                }
            }
            Role::Submodules(s) => {
                let inner = generic_arg(&f.ty, "Vec").expect("validated: a Vec");
                let pattern = s.pattern.as_ref().expect("validated: a pattern");
                let count = s.count.as_ref().expect("validated: a count");
                let count =
                    quote_spanned!(count.span()=> ::lazyforge::module::__private::dim(#count));
                let child_config = s
                    .config
                    .as_ref()
                    .map_or_else(|| default_child_config(inner.span()), |c| quote!(#c));
                let (bind, as_dyn, as_dyn_mut) = module_paths(inner);
                children.push(quote!(self.#field.iter().map(#as_dyn)));
                children_mut.push(quote!(self.#field.iter_mut().map(#as_dyn_mut)));
                quote! {
                    ::core::iter::Iterator::collect::<::lazyforge::Result<::std::vec::Vec<_>>>(
                        ::core::iter::Iterator::map(0..#count, |__lazyforge_i| {
                            #bind(
                                #child_config,
                                &__lazyforge_scope.indexed(#field_name, #pattern, __lazyforge_i),
                            )
                        }),
                    )?
                }
            }
        };
        binds.push(quote!(let #local = #init;));
        inits.push(quote!(#field: #local));
    }

    let asserts = m.fields.iter().map(|f| {
        let (ty, field) = (&f.ty, &f.ident);
        let check = quote_spanned!(ty.span()=>
            ::lazyforge::module::__private::assert_field_is_send_sync::<#field, #ty>();
        );
        quote! {{
            #[allow(non_camel_case_types)]
            struct #field;
            #check
        }}
    });
    let struct_def = struct_def(m);
    let accessors = accessors(m, true);
    quote! {
        #struct_def

        #accessors

        const _: () = {
            #[allow(dead_code)]
            fn __lazyforge_fields_are_send_sync() {
                #(#asserts)*
            }

            impl ::lazyforge::module::LazyModule for #ident {
                fn type_name(&self) -> &'static str {
                    #name
                }

                fn state(&self) -> &::lazyforge::module::ModuleState {
                    &self.__lazyforge_module
                }

                fn config_json(&self) -> ::lazyforge::module::__private::Value {
                    #config_json
                }

                fn own_weights(&self) -> ::std::vec::Vec<&::lazyforge::module::Weight> {
                    ::core::iter::Iterator::collect(::core::iter::empty() #(.chain(#weights))*)
                }

                fn own_weights_mut(&mut self) -> ::std::vec::Vec<&mut ::lazyforge::module::Weight> {
                    ::core::iter::Iterator::collect(::core::iter::empty() #(.chain(#weights_mut))*)
                }

                fn children(&self) -> ::std::vec::Vec<&#dyn_module> {
                    ::core::iter::Iterator::collect(::core::iter::empty() #(.chain(#children))*)
                }

                fn children_mut(&mut self) -> ::std::vec::Vec<&mut #dyn_module> {
                    ::core::iter::Iterator::collect(::core::iter::empty() #(.chain(#children_mut))*)
                }
            }

            impl ::lazyforge::module::Bind for #ident {
                type Config = #config_ty;

                fn bind(
                    __lazyforge_config: Self::Config,
                    __lazyforge_scope: &::lazyforge::module::Scope<'_>,
                ) -> ::lazyforge::Result<Self> {
                    #config_ref
                    #(#binds)*
                    ::core::result::Result::Ok(Self {
                        #(#inits,)*
                        __lazyforge_module: ::lazyforge::module::ModuleState::new(__lazyforge_scope),
                    })
                }
            }
        };
    }
}

/// `<Ty as Bind>::bind`, `::__as_dyn` and `::__as_dyn_mut`, each spanned on the field's type
/// (as is the default child config) so that a type that is not a module is reported once,
/// there: rustc merges identical errors at one span.
fn module_paths(ty: &syn::Type) -> (TokenStream, TokenStream, TokenStream) {
    let span = ty.span();
    (
        quote_spanned!(span=> <#ty as ::lazyforge::module::Bind>::bind),
        quote_spanned!(span=> <#ty as ::lazyforge::module::Bind>::__as_dyn),
        quote_spanned!(span=> <#ty as ::lazyforge::module::Bind>::__as_dyn_mut),
    )
}

/// Everything `#[strategy]` generates for a valid impl block.
pub fn strategy(s: &Strategy) -> TokenStream {
    let item = &s.item;
    let self_ty = &item.self_ty;
    let mut entry_points = Vec::new();
    let mut arms = Vec::new();
    let mut dispatch_sig = None;
    for mode in &s.modes {
        let method = s
            .mode_method(mode)
            .expect("validated: every mode has a method");
        let mode_name = mode.to_string();
        let entry = format_ident!("forward_{}", mode);
        let (mut params, mut args) = renamed_args(&method.sig.inputs);
        let call = match &s.via {
            // validated: the via method's first argument is the mode, passed here.
            Some(via) => {
                params.remove(0);
                args.remove(0);
                quote!(Self::#via(self, ::lazyforge::ExecutionMode::new(#mode_name), #(#args),*))
            }
            None => quote!(Self::#mode(self, #(#args),*)),
        };
        let receiver = method.sig.inputs.first();
        let generics = &method.sig.generics;
        let where_clause = &generics.where_clause;
        let output = &method.sig.output;
        let callee = match &s.via {
            Some(via) => format!("{via}(ExecutionMode::new(\"{mode_name}\"), ..)"),
            None => format!("{mode_name}(..)"),
        };
        let doc = format!(
            "Runs mode `{mode_name}`: loads this module's own weights if needed, calls \
             `self.{callee}` and times the call into the module's metrics."
        );
        entry_points.push(quote! {
            #[doc = #doc]
            pub fn #entry #generics (#receiver, #(#params),*) #output #where_clause {
                ::lazyforge::module::__private::run_mode(
                    self,
                    ::lazyforge::ExecutionMode::new(#mode_name),
                    move || #call,
                )
            }
        });
        arms.push(quote!(#mode_name => Self::#entry(self, #(#args),*),));
        if dispatch_sig.is_none() {
            dispatch_sig = Some((receiver, params, args, generics, output));
        }
    }
    let modes = s.modes.iter().map(|m| {
        let name = m.to_string();
        quote!(::lazyforge::ExecutionMode::new(#name))
    });
    let (receiver, params, _, generics, output) =
        dispatch_sig.expect("validated: at least one mode");
    let where_clause = &generics.where_clause;
    quote! {
        #item

        impl #self_ty {
            #(#entry_points)*

            /// Runs the forward of `mode`, one of this module's `Strategy::MODES`; an error for
            /// a mode its strategy does not list.
            pub fn forward #generics (
                #receiver,
                __lazyforge_mode: ::lazyforge::ExecutionMode,
                #(#params),*
            ) #output #where_clause {
                match ::lazyforge::ExecutionMode::name(__lazyforge_mode) {
                    #(#arms)*
                    _ => ::lazyforge::module::__private::unsupported_mode(self, __lazyforge_mode),
                }
            }
        }

        impl ::lazyforge::module::Strategy for #self_ty {
            const MODES: &'static [::lazyforge::ExecutionMode] = &[#(#modes),*];
        }
    }
}

/// The typed arguments after the receiver, renamed `__lazyforge_arg{i}`: parameters and the
/// names to pass on.
fn renamed_args(
    inputs: &syn::punctuated::Punctuated<FnArg, syn::Token![,]>,
) -> (Vec<TokenStream>, Vec<Ident>) {
    inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(&t.ty),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(i, ty)| {
            let name = format_ident!("__lazyforge_arg{}", i);
            (quote!(#name: #ty), name)
        })
        .unzip()
}
