//! Chat templates: the Jinja template a checkpoint ships (`tokenizer.chat_template`, or
//! `chat_template` in an HF `tokenizer_config.json`), rendered with `minijinja` the way HF
//! `transformers` renders it, so the prompt text is the one the model was trained on.
//!
//! transformers renders with `trim_blocks` and `lstrip_blocks` on, Python string methods
//! (`.strip()`, `.startswith()`) available and a `raise_exception` function; so do we.
//!
//! A template comes from a file we did not write, so it is treated as untrusted code:
//!
//! - it cannot read files: the environment has no loader, so `include`, `import`,
//!   `extends` and `from` find no template and fail;
//! - it cannot run without bound: each render has [`FUEL_BASE`] instructions of fuel plus
//!   [`FUEL_PER_MESSAGE`] per message (minijinja's `fuel`), and calls nest at most
//!   [`RECURSION_LIMIT`] deep;
//! - it cannot allocate without bound through a count or width argument: `batch`,
//!   `slice`, `indent`, `tojson(indent=…)` and widths in `format` / `str.format` specs are
//!   limited to [`MAX_WIDTH`] (minijinja itself limits `range` and string repetition);
//! - the text it renders is only text: message contents and metadata strings are values,
//!   never template source or format strings.

use crate::error::{Error, Result};
use minijinja::value::{Kwargs, Rest, StringInput, Value};
use minijinja::{context, Environment, ErrorKind, State};
use serde::{Deserialize, Serialize};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role` saying `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("assistant", content)
    }
}

/// A compiled-once, checked chat template with the BOS/EOS texts it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Checks that `source` compiles. `bos_token` / `eos_token` are the texts the template
    /// sees as `bos_token` and `eos_token` (`""` when the model has none).
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate> {
        let template = ChatTemplate {
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        };
        let env = environment();
        env.template_from_str(&template.source)
            .map_err(|e| template_error("compiling", &e))?;
        Ok(template)
    }

    /// The template a tokenizer's checkpoint ships, with its BOS/EOS texts; `None` when the
    /// checkpoint has no template.
    pub fn from_tokenizer(tokenizer: &crate::TextTokenizer) -> Option<Result<ChatTemplate>> {
        tokenizer
            .chat_template()
            .map(|src| ChatTemplate::new(src, tokenizer.bos_text(), tokenizer.eos_text()))
    }

    /// The prompt text for `messages`; with `add_generation_prompt`, it ends with the
    /// opening of an assistant turn, for the model to complete.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let mut env = environment();
        let fuel = FUEL_BASE.saturating_add(FUEL_PER_MESSAGE.saturating_mul(messages.len() as u64));
        env.set_fuel(Some(fuel));
        let template = env
            .template_from_str(&self.source)
            .map_err(|e| template_error("compiling", &e))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| template_error("rendering", &e))
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Instructions one render may execute, whatever the conversation (real templates take a
/// few hundred per message).
pub const FUEL_BASE: u64 = 200_000;

/// Instructions one render may execute per message, on top of [`FUEL_BASE`].
pub const FUEL_PER_MESSAGE: u64 = 20_000;

/// How deep calls (macros, loops, conditions) may nest while rendering.
pub const RECURSION_LIMIT: usize = 64;

/// The largest count or width a template may pass to a filter that allocates that many
/// items or characters (`batch`, `slice`, `indent`, `tojson`, `format` widths).
pub const MAX_WIDTH: usize = 10_000;

/// A minijinja environment configured like transformers' chat-template environment, with
/// the limits of the module docs. It has no loader: templates cannot reach files.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_fuel(Some(FUEL_BASE));
    env.set_unknown_method_callback(|state, value, method, args| {
        if method == "format" {
            if let Some(s) = value.as_str() {
                check_format_widths(s)?;
            }
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_filter(
        "batch",
        |state: &State, value: Value, count: usize, fill: Option<Value>| {
            check_width("batch", count)?;
            minijinja::filters::batch(state, value, count, fill)
        },
    );
    env.add_filter(
        "slice",
        |state: &State, value: Value, count: usize, fill: Option<Value>| {
            check_width("slice", count)?;
            minijinja::filters::slice(state, value, count, fill)
        },
    );
    env.add_filter("indent", bounded_indent);
    env.add_filter(
        "tojson",
        |value: &Value, indent: Option<Value>, kwargs: Kwargs| {
            let width = match &indent {
                Some(i) => i.as_usize(),
                None => kwargs
                    .peek::<Option<Value>>("indent")?
                    .and_then(|i| i.as_usize()),
            };
            check_width("tojson indent", width.unwrap_or(0))?;
            minijinja::filters::tojson(value, indent, kwargs)
        },
    );
    env.add_filter(
        "format",
        |state: &State, format: &Value, args: Rest<Value>| {
            if let Some(s) = format.as_str() {
                check_format_widths(s)?;
            }
            minijinja::filters::format(state, format, args)
        },
    );
    env
}

/// minijinja's `indent`, with its width limited to [`MAX_WIDTH`].
fn bounded_indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let w = match width {
        Some(w) => Some(w),
        None => kwargs.peek::<Option<usize>>("width")?,
    };
    check_width("indent", w.unwrap_or(0))?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// Refuses a count or width above [`MAX_WIDTH`].
fn check_width(what: &str, n: usize) -> Result<(), minijinja::Error> {
    if n > MAX_WIDTH {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("{what}: {n} is more than the {MAX_WIDTH} a chat template may ask for"),
        ));
    }
    Ok(())
}

/// Refuses a printf-style (`%08.3f`) or Python-style (`{:>8}`) format string any of whose
/// widths or precisions is above [`MAX_WIDTH`]: each would allocate that many characters.
fn check_format_widths(format: &str) -> Result<(), minijinja::Error> {
    let bytes = format.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Inside a `%…` or `{…}` spec, every run of digits is a width, precision or index.
        let spec_end = match bytes[i] {
            b'%' => bytes[i + 1..]
                .iter()
                .position(|b| b.is_ascii_alphabetic() || *b == b'%')
                .map_or(bytes.len(), |p| i + 1 + p),
            b'{' => bytes[i + 1..]
                .iter()
                .position(|&b| b == b'}')
                .map_or(bytes.len(), |p| i + 1 + p),
            _ => {
                i += 1;
                continue;
            }
        };
        for run in bytes[i + 1..spec_end].split(|b| !b.is_ascii_digit()) {
            let n = run.iter().fold(0usize, |n, &b| {
                n.saturating_mul(10).saturating_add((b - b'0') as usize)
            });
            check_width("format width", n)?;
        }
        i = spec_end.max(i + 1);
    }
    Ok(())
}

/// An [`Error::ChatTemplate`] with minijinja's message and, where it has one, the line.
fn template_error(doing: &str, e: &minijinja::Error) -> Error {
    let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
    let detail = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.to_string(),
    };
    Error::ChatTemplate(format!("{doing} failed{line}: {detail}"))
}

/// Gemma's turn format, for Gemma files that carry no chat template (as Gemma's own template: a
/// system message opens the first user turn; the assistant's role is `model`).
pub const GEMMA_TEMPLATE: &str = r#"{{ bos_token }}{% if messages and messages[0].role == 'system' %}{% set sys = (messages[0].content | trim) ~ '\n\n' %}{% set turns = messages[1:] %}{% else %}{% set sys = '' %}{% set turns = messages %}{% endif %}{% for m in turns %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}
{{ (sys if loop.first else '') ~ (m.content | trim) }}<end_of_turn>
{% endfor %}{% if add_generation_prompt %}<start_of_turn>model
{% endif %}"#;

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let text = t.render(&[ChatMessage::user("Hi")], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let text = t.render(&[ChatMessage::user("Hi")], false).unwrap();
        assert_eq!(text, "<|im_start|>user\nHi<|im_end|>\n");
    }

    #[test]
    fn python_string_methods_and_bos_work() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}[{{ m.content.strip() }}]{% endfor %}",
            "<s>",
            "</s>",
        )
        .unwrap();
        let text = t.render(&[ChatMessage::user("  hi  ")], false).unwrap();
        assert_eq!(text, "<s>[hi]");
    }

    #[test]
    fn block_tags_trim_like_transformers() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n    {{ m.content }}\n{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let text = t
            .render(&[ChatMessage::user("a"), ChatMessage::user("b")], false)
            .unwrap();
        assert_eq!(text, "    a\n    b\n");
    }

    #[test]
    fn syntax_error_is_an_error_with_the_line() {
        let err = ChatTemplate::new("{% for m in messages %}\n{{ m.content }", "", "").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("chat template: compiling failed (line"),
            "{msg}"
        );
    }

    #[test]
    fn raise_exception_surfaces_the_templates_message() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        let msg = t
            .render(&[ChatMessage::assistant("x")], false)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("first must be user"), "{msg}");
    }
}
