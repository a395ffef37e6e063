//! What a checkpoint's metadata can and cannot make us do: its chat template is code we
//! did not write (no file access, bounded time and nesting, bounded widths), and its
//! strings are data (never format strings or template source; invalid UTF-8 is an error).

use lazyforge::source::gguf::{GgufWriter, MetaType, WriteValue};
use lazyforge_models::{ChatMessage, ChatTemplate, Error, TextTokenizer};
use std::time::{Duration, Instant};

fn render(source: &str) -> Result<String, Error> {
    ChatTemplate::new(source, "<s>", "</s>")?.render(&[ChatMessage::user("hi")], true)
}

#[test]
fn chat_templates_cannot_read_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "SECRET").unwrap();
    let s = secret.display();
    for source in [
        format!("{{% include '{s}' %}}"),
        "{% include 'secret.txt' %}".to_string(),
        format!("{{% import '{s}' as m %}}{{{{ m }}}}"),
        format!("{{% from '{s}' import x %}}{{{{ x }}}}"),
        format!("{{% extends '{s}' %}}"),
        "{% include '/etc/passwd' %}".to_string(),
    ] {
        match render(&source) {
            Ok(text) => panic!("{source}: rendered {text:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.contains("SECRET"), "{source}: {msg}");
                assert!(msg.contains("chat template"), "{source}: {msg}");
            }
        }
    }
}

#[test]
fn chat_templates_cannot_loop_or_recurse_without_bound() {
    for source in [
        // 10^10 iterations, each within minijinja's own range limit.
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        // Recursion without a base case.
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        // Recursion through a recursive loop.
        "{% for m in messages recursive %}{{ loop([m]) }}{% endfor %}",
    ] {
        let start = Instant::now();
        let err = render(source).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{source}: took {:?}",
            start.elapsed()
        );
        let msg = err.to_string();
        assert!(
            msg.contains("fuel") || msg.contains("recursion"),
            "{source}: {msg}"
        );
    }
}

#[test]
fn chat_templates_cannot_ask_for_huge_widths_or_counts() {
    for source in [
        "{{ 'x'|indent(1000000000000) }}",
        "{{ 'x'|indent(width=1000000000000) }}",
        "{{ messages|tojson(indent=1000000000000) }}",
        "{{ messages|tojson(1000000000) }}",
        "{{ messages|batch(1000000000000000) }}",
        "{{ messages|slice(1000000000000000) }}",
        "{{ '%0999999999999d'|format(1) }}",
        "{{ '%.999999999999f'|format(1.5) }}",
        "{{ '{:>999999999999}'.format('x') }}",
        "{{ 'ab' * 1000000000000 }}",
        "{{ range(1000000000000)|list }}",
    ] {
        let err = render(source).unwrap_err();
        assert!(err.to_string().contains("chat template"), "{source}: {err}");
    }
    // Ordinary widths still work.
    assert_eq!(render("{{ '%05d'|format(42) }}").unwrap(), "00042");
    assert_eq!(render("{{ 'a\nb'|indent(2) }}").unwrap(), "a\n  b");
    assert_eq!(
        render("{{ [1, 2, 3]|batch(2)|list }}").unwrap(),
        "[[1, 2], [3]]"
    );
}

#[test]
fn message_text_is_data_not_template_source_or_a_format_string() {
    let t = ChatTemplate::new(
        "{% for m in messages %}[{{ m.content }}]{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let hostile = "{{ 7 * 7 }} {% include '/etc/passwd' %} %s%n%x {0} {}";
    let text = t.render(&[ChatMessage::user(hostile)], false).unwrap();
    assert_eq!(text, format!("[{hostile}]"));
}

fn tokenizer_gguf(tokens: &[&str], template: Option<&str>) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("tokenizer.ggml.model", "gpt2").unwrap();
    w.add_metadata("tokenizer.ggml.pre", "smollm").unwrap();
    let strings = tokens.iter().map(|s| WriteValue::from(*s)).collect();
    w.add_array("tokenizer.ggml.tokens", MetaType::String, strings)
        .unwrap();
    w.add_array("tokenizer.ggml.merges", MetaType::String, Vec::new())
        .unwrap();
    if let Some(t) = template {
        w.add_metadata("tokenizer.chat_template", t).unwrap();
    }
    w
}

#[test]
fn metadata_strings_are_checked_utf8_and_used_as_plain_text() {
    // Token texts that look like format strings and template code decode as themselves.
    let tokens = ["%s", "%n", "{0}", "{{", "}}", "{%"];
    let file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    tokenizer_gguf(&tokens, Some("{{ bos_token }}{{ messages[0].content }}"))
        .write_to_path(file.path())
        .unwrap();
    let tok = TextTokenizer::from_gguf_file(file.path()).unwrap();
    let ids: Vec<u32> = (0..tokens.len() as u32).collect();
    assert_eq!(tok.decode(&ids).unwrap(), tokens.concat());

    // Invalid UTF-8 in the template (or any metadata string) is an error naming the file
    // and the offset, not a panic and not a lossy guess.
    let mut bytes = tokenizer_gguf(&tokens, Some("{{ 'ok' }}XX")).to_bytes();
    let at = bytes
        .windows(2)
        .position(|w| w == b"XX")
        .expect("the marker is in the file");
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    std::fs::write(file.path(), &bytes).unwrap();
    let err = TextTokenizer::from_gguf_file(file.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("UTF-8"), "{msg}");
    assert!(msg.contains(&file.path().display().to_string()), "{msg}");
}
