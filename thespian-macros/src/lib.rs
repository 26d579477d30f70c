//! Procedural macros of thespian-rs: `#[derive(Message)]`, `#[thespian::handles]` and
//! `#[thespian::main]`.
//!
//! This crate exists because a derive and an attribute macro must live in a `proc-macro` crate
//! of their own. Use them through the `thespian` facade (or `thespian-core`), whose default
//! feature `derive` re-exports them, as serde does with its derives; the generated code names
//! the facade (`::thespian`) or, for the derive re-exported by `thespian-core`, that crate.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{
    parse_macro_input, DeriveInput, Error, ImplItem, ItemFn, ItemImpl, LitStr, Path, Token, Type,
};

/// Implements `Message` for a struct or enum (which also derives `Clone`, `Debug`,
/// `Serialize` and `Deserialize`).
///
/// Attributes, all optional, in `#[message(...)]`:
/// - `name = "app.Greet"`: the wire name. By default it is the type's full path,
///   `module_path!()` + `"::"` + the type's name (`my_app::greeting::Greet`), so two crates'
///   `Greet`s never collide. Give a name when the type may move between modules while programs
///   of the old layout still run.
/// - `reply = Greeting`: the type an actor answers this message with, for typed requests
///   (`ActorSystem::request`): implements `Request` with `Reply = Greeting`.
/// - `crate = path`: where the `Message` trait lives, for a crate that re-exports thespian
///   under another name (default `::thespian`).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use thespian::{Message, Request};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Message)]
/// #[message(reply = Greeting)]
/// struct Greet(String);
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Message)]
/// #[message(name = "app.Greeting")]
/// struct Greeting(String);
///
/// assert_eq!(Greet::wire_name(), concat!(module_path!(), "::Greet"));
/// assert_eq!(Greeting::wire_name(), "app.Greeting");
/// fn reply_of<R: Request>() -> std::borrow::Cow<'static, str> {
///     <R::Reply as Message>::wire_name()
/// }
/// assert_eq!(reply_of::<Greet>(), "app.Greeting");
/// ```
///
/// Generic types are refused (each instantiation would need a name of its own: implement
/// `Message` by hand), as are unknown attributes and names given twice:
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(Clone, Debug, Serialize, Deserialize, thespian::Message)]
/// struct Wrapped<T>(T);
/// ```
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(Clone, Debug, Serialize, Deserialize, thespian::Message)]
/// #[message(nmae = "app.Typo")]
/// struct Typo;
/// ```
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(Clone, Debug, Serialize, Deserialize, thespian::Message)]
/// #[message(name = "a", name = "b")]
/// struct Twice;
/// ```
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(Clone, Debug, Serialize, Deserialize, thespian::Message)]
/// #[message(name = "")]
/// struct Empty;
/// ```
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(Clone, Debug, Serialize, Deserialize, thespian::Message)]
/// #[message(name = "thespian.Mine")]
/// struct Reserved;
/// ```
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_message(&input, syn::parse_quote!(::thespian))
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// `#[derive(Message)]` as `thespian-core` re-exports it: the same as the facade's, with the
/// trait found in `::thespian_core`. Use it as `thespian_core::Message`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use thespian_core::Message;
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Message)]
/// #[message(name = "core.Ping")]
/// struct Ping;
///
/// assert_eq!(Ping::wire_name(), "core.Ping");
/// ```
#[proc_macro_derive(CoreMessage, attributes(message))]
pub fn derive_core_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand_message(&input, syn::parse_quote!(::thespian_core))
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// What `#[message(...)]` said.
#[derive(Default)]
struct MessageArgs {
    name: Option<LitStr>,
    reply: Option<Type>,
    krate: Option<Path>,
}

/// The wire-name prefix reserved for thespian's own system messages (`SYSTEM_MESSAGE_PREFIX`).
const RESERVED_PREFIX: &str = "thespian.";

impl MessageArgs {
    fn from_attributes(input: &DeriveInput) -> syn::Result<MessageArgs> {
        let mut args = MessageArgs::default();
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("message")) {
            attr.parse_nested_meta(|meta| {
                let twice = |what: &str| meta.error(format!("`{what}` is given twice"));
                if meta.path.is_ident("name") {
                    if args.name.is_some() {
                        return Err(twice("name"));
                    }
                    let name: LitStr = meta.value()?.parse()?;
                    let text = name.value();
                    if text.trim().is_empty() {
                        return Err(Error::new(name.span(), "a wire name cannot be empty"));
                    }
                    if text.starts_with(RESERVED_PREFIX) {
                        return Err(Error::new(
                            name.span(),
                            "wire names starting with `thespian.` are reserved for thespian's system messages",
                        ));
                    }
                    args.name = Some(name);
                } else if meta.path.is_ident("reply") {
                    if args.reply.is_some() {
                        return Err(twice("reply"));
                    }
                    args.reply = Some(meta.value()?.parse()?);
                } else if meta.path.is_ident("crate") {
                    if args.krate.is_some() {
                        return Err(twice("crate"));
                    }
                    args.krate = Some(meta.value()?.parse()?);
                } else {
                    return Err(meta.error(format!(
                        "unknown message attribute `{}`: expected `name = \"...\"`, `reply = Type` or `crate = path`",
                        meta.path.to_token_stream()
                    )));
                }
                Ok(())
            })?;
        }
        Ok(args)
    }
}

fn expand_message(input: &DeriveInput, default_crate: Path) -> syn::Result<TokenStream2> {
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "#[derive(Message)] does not take generic types: each instantiation needs a wire \
             name of its own, so implement `Message` by hand for them",
        ));
    }
    if let syn::Data::Union(u) = &input.data {
        return Err(Error::new(
            u.union_token.span,
            "#[derive(Message)] takes structs and enums, not unions",
        ));
    }
    let args = MessageArgs::from_attributes(input)?;
    let krate = args.krate.unwrap_or(default_crate);
    let ident = &input.ident;
    let name = match &args.name {
        Some(name) => quote!(#name),
        None => {
            let suffix = LitStr::new(&format!("::{ident}"), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), #suffix))
        }
    };
    let request = args.reply.map(|reply| {
        quote! {
            impl #krate::Request for #ident {
                type Reply = #reply;
            }
        }
    });
    Ok(quote! {
        impl #krate::Message for #ident {
            fn wire_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(#name)
            }
        }
        #request
    })
}

/// Marks a program's `main`: calls `thespian::init()` before the body, so a program
/// re-executed by a multi-process base (`Tcp`, `Udp`) takes its role before anything else
/// runs. `main` may return a value (a `Result`) as usual.
///
/// ```
/// #[thespian::main]
/// fn main() -> thespian::Result<()> {
///     let sys = thespian::ActorSystem::builder().transient_unique(true).start()?;
///     sys.shutdown()
/// }
/// ```
///
/// Only a `fn` without arguments and not `async` is accepted; `#[thespian::main(crate = path)]`
/// names a crate that re-exports thespian under another name.
///
/// ```compile_fail
/// #[thespian::main]
/// fn main(arg: u32) {}
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as MainArgs);
    let function = parse_macro_input!(item as ItemFn);
    expand_main(args, function)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// What `#[thespian::main(...)]` said.
struct MainArgs {
    krate: Option<Path>,
}

impl Parse for MainArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<MainArgs> {
        let mut krate = None;
        let items: Punctuated<syn::MetaNameValue, Token![,]> = Punctuated::parse_terminated(input)?;
        for item in items {
            if !item.path.is_ident("crate") {
                return Err(Error::new_spanned(
                    &item.path,
                    "unknown argument: `#[thespian::main]` takes only `crate = path`",
                ));
            }
            if krate.is_some() {
                return Err(Error::new_spanned(&item.path, "`crate` is given twice"));
            }
            krate = Some(syn::parse2::<Path>(item.value.to_token_stream())?);
        }
        Ok(MainArgs { krate })
    }
}

fn expand_main(args: MainArgs, mut function: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if let Some(token) = &sig.asyncness {
        return Err(Error::new_spanned(
            token,
            "#[thespian::main] does not take an async fn",
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(Error::new_spanned(
            &sig.inputs,
            "#[thespian::main] takes a fn without arguments",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "#[thespian::main] takes a fn without generic parameters",
        ));
    }
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::thespian));
    function
        .block
        .stmts
        .insert(0, syn::parse_quote!(#krate::init();));
    Ok(function.into_token_stream())
}

/// Writes an actor's `receive` from its `Handler<M>` impls:
/// placed on `impl Actor for T`, `#[thespian::handles(A, B)]` adds
/// `fn receive(..) { dispatch(self, env, ctx).handle::<A>().handle::<B>().finish() }`, the
/// same dispatch chain as written by hand, so a handler returning `Flow::Super` passes the
/// message on to the next one. Optional, after the types:
/// - `on_system_message = path`: a `fn(&mut T, &Envelope, &mut Context) -> R` for system
///   messages no typed handler took (`receiveMsg_ActorSystemMessage`);
/// - `otherwise = path`: the same signature, for every message nothing took
///   (`receiveUnrecognizedMessage`); without it such messages are discarded;
/// - `crate = path`: where thespian is (default `::thespian`).
///
/// The rest of the impl (`type_name`, the capability checks, ...) stays as written; a
/// `receive` written there as well is an error.
///
/// ```
/// use std::time::Duration;
/// use thespian::prelude::*;
///
/// #[derive(Default)]
/// struct Greeter {
///     greeted: u32,
/// }
///
/// impl Handler<String> for Greeter {
///     type Output = thespian::Result<()>;
///     fn handle(&mut self, name: &String, env: &Envelope, ctx: &mut Context<'_>) -> Self::Output {
///         self.greeted += 1;
///         ctx.reply_to(env, format!("Hello, {name}!"))
///     }
/// }
///
/// impl Handler<u32> for Greeter {
///     type Output = thespian::Result<()>;
///     fn handle(&mut self, _: &u32, env: &Envelope, ctx: &mut Context<'_>) -> Self::Output {
///         ctx.reply_to(env, self.greeted)
///     }
/// }
///
/// impl Greeter {
///     fn unknown(&mut self, env: &Envelope, _: &mut Context<'_>) {
///         log::info!("ignoring {}", env.type_name());
///     }
/// }
///
/// #[thespian::handles(String, u32, otherwise = Greeter::unknown)]
/// impl Actor for Greeter {}
///
/// # fn main() -> thespian::Result<()> {
/// let sys = ActorSystem::builder().transient_unique(true).start()?;
/// let greeter = sys.create_actor::<Greeter>()?;
/// let hello = sys.ask_as::<String>(&greeter, "world", Duration::from_secs(1))?;
/// assert_eq!(hello, "Hello, world!");
/// assert_eq!(sys.ask_as::<u32>(&greeter, 0u32, Duration::from_secs(1))?, 1);
/// sys.shutdown()
/// # }
/// ```
///
/// Without any message type, or with an unknown option, it does not compile:
///
/// ```compile_fail
/// # use thespian::prelude::*;
/// # #[derive(Default)] struct Quiet;
/// # impl Quiet { fn unknown(&mut self, _: &Envelope, _: &mut Context<'_>) {} }
/// #[thespian::handles(otherwise = Quiet::unknown)]
/// impl Actor for Quiet {}
/// ```
///
/// ```compile_fail
/// # use thespian::prelude::*;
/// # #[derive(Default)] struct Quiet;
/// # impl Handler<String> for Quiet { type Output = (); fn handle(&mut self, _: &String, _: &Envelope, _: &mut Context<'_>) {} }
/// # impl Quiet { fn unknown(&mut self, _: &Envelope, _: &mut Context<'_>) {} }
/// #[thespian::handles(String, otherwize = Quiet::unknown)]
/// impl Actor for Quiet {}
/// ```
#[proc_macro_attribute]
pub fn handles(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as HandlesArgs);
    let block = parse_macro_input!(item as ItemImpl);
    expand_handles(args, block)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// What `#[thespian::handles(...)]` said.
struct HandlesArgs {
    types: Vec<Type>,
    on_system_message: Option<Path>,
    otherwise: Option<Path>,
    krate: Option<Path>,
}

impl Parse for HandlesArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<HandlesArgs> {
        let mut args = HandlesArgs {
            types: Vec::new(),
            on_system_message: None,
            otherwise: None,
            krate: None,
        };
        while !input.is_empty() {
            if (input.peek(syn::Ident) || input.peek(Token![crate])) && input.peek2(Token![=]) {
                let key: syn::Ident = if input.peek(Token![crate]) {
                    let token: Token![crate] = input.parse()?;
                    syn::Ident::new("crate", token.span)
                } else {
                    input.parse()?
                };
                input.parse::<Token![=]>()?;
                let value: Path = input.parse()?;
                let slot = match key.to_string().as_str() {
                    "on_system_message" => &mut args.on_system_message,
                    "otherwise" => &mut args.otherwise,
                    "crate" => &mut args.krate,
                    other => {
                        return Err(Error::new(
                            key.span(),
                            format!(
                                "unknown option `{other}`: expected message types, then \
                                 `on_system_message = path`, `otherwise = path` or `crate = path`"
                            ),
                        ))
                    }
                };
                if slot.is_some() {
                    return Err(Error::new(key.span(), format!("`{key}` is given twice")));
                }
                *slot = Some(value);
            } else {
                args.types.push(input.parse()?);
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn expand_handles(args: HandlesArgs, mut block: ItemImpl) -> syn::Result<TokenStream2> {
    if args.types.is_empty() {
        return Err(Error::new(
            Span::call_site(),
            "#[thespian::handles] needs at least one message type: `#[thespian::handles(A, B)]`",
        ));
    }
    if block.trait_.is_none() {
        return Err(Error::new_spanned(
            &block.self_ty,
            "#[thespian::handles] goes on an `impl Actor for T` block",
        ));
    }
    if let Some(existing) = block.items.iter().find_map(|item| match item {
        ImplItem::Fn(f) if f.sig.ident == "receive" => Some(f),
        _ => None,
    }) {
        return Err(Error::new_spanned(
            &existing.sig,
            "#[thespian::handles] writes `receive` itself: remove this one",
        ));
    }
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::thespian));
    let types = &args.types;
    let system = args
        .on_system_message
        .map(|f| quote!(.on_system_message(|me, env, ctx| #f(me, env, ctx))));
    let end = match args.otherwise {
        Some(f) => quote!(.otherwise(|me, env, ctx| #f(me, env, ctx))),
        None => quote!(.finish()),
    };
    block.items.push(syn::parse_quote! {
        fn receive(
            &mut self,
            envelope: &#krate::Envelope,
            ctx: &mut #krate::Context<'_>,
        ) -> #krate::ActorResult {
            #krate::dispatch(self, envelope, ctx)
                #( .handle::<#types>() )*
                #system
                #end
        }
    });
    Ok(block.into_token_stream())
}
