//! Procedural macros for lazyforge: `#[lazy_module]` and `#[strategy]`.
//!
//! Each macro reads its input (`ast.rs`, with our attributes parsed by `attr.rs`), checks
//! every rule (`valid.rs`, collecting all errors), then generates code (`expand.rs`) — or,
//! on error, the input plus stubs (`fallback.rs`) so that one mistake gives one error.
//! Use them through `lazyforge`, which re-exports both and documents the grammar.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod fallback;
mod valid;

use proc_macro::TokenStream;

/// Turns a struct of `#[config]`, `#[weight(..)]`, `#[submodule(..)]`, `#[submodules(..)]`
/// and `#[state]` fields into a lazily bound module (see `lazyforge::module`).
#[proc_macro_attribute]
pub fn lazy_module(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut cx = ctxt::Ctxt::default();
    let module = ast::module(&mut cx, args.into(), &item);
    if let Some(m) = &module {
        valid::module(&mut cx, m);
    }
    let out = match (module, cx.finish()) {
        (Some(m), Ok(())) => expand::module(&m),
        (Some(m), Err(e)) => {
            let mut out = fallback::module(&m);
            out.extend(e.to_compile_error());
            out
        }
        (None, result) => {
            let mut out = fallback::item(&item);
            if let Err(e) = result {
                out.extend(e.to_compile_error());
            }
            out
        }
    };
    out.into()
}

/// On `impl Module { fn prefill(..) fn decode(..) }`: generates `forward_<mode>` entry
/// points, `forward(mode, ..)` and `impl Strategy` for the listed modes. With
/// `#[strategy(prefill, decode, via = run)]`, every mode runs the one method
/// `fn run(&self, mode: ExecutionMode, ..)`, passed its mode.
#[proc_macro_attribute]
pub fn strategy(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut cx = ctxt::Ctxt::default();
    let strategy = ast::strategy(&mut cx, args.into(), &item);
    if let Some(s) = &strategy {
        valid::strategy(&mut cx, s);
    }
    let out = match (strategy, cx.finish()) {
        (Some(s), Ok(())) => expand::strategy(&s),
        (_, result) => {
            let mut out = quote::quote!(#item);
            if let Err(e) = result {
                out.extend(e.to_compile_error());
            }
            out
        }
    };
    out.into()
}
