//! What the command prints: control characters in text that plugins, data
//! files or endpoints supplied are shown escaped (they could retitle or clear
//! the terminal), and a closed stdout (`… | head -1`) ends the command
//! quietly instead of panicking.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

/// `s` with every control character other than newline and tab escaped as
/// `\u{…}` (ESC, carriage return, backspace, C1 controls, DEL).
pub fn clean(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            // `\u001b`: readable, and still valid inside a JSON string
            // (control characters are all below U+00A0).
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error with its causes, each cause added only where the message does
/// not already carry it (many errors name their source in their own text;
/// `{:#}` would print it twice).
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Print to stdout, cleaned; a broken pipe ends the process quietly.
pub fn write_out(args: fmt::Arguments<'_>, newline: bool) {
    let text = fmt::format(args);
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(clean(&text).as_bytes())
        .and_then(|()| {
            if newline {
                stdout.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        quit_on(&e);
    }
}

/// Print to stderr, cleaned; errors writing it are ignored.
pub fn write_err(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(&text));
}

/// End the process at once, successfully, when `e` is a closed pipe: the
/// reader has all it wanted.
pub fn quit_on(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
}

/// `println!` through [`write_out`].
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::term::write_out(format_args!($($t)*), true) };
}

/// `print!` through [`write_out`].
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::term::write_out(format_args!($($t)*), false) };
}

/// `eprintln!` through [`write_err`].
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::term::write_err(format_args!($($t)*)) };
}

pub(crate) use {errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x.wasm: {source}")]
        struct Read {
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(Read { source: io }).context("plugin 'p'");
        assert_eq!(describe(&e), "plugin 'p': cannot read x.wasm: gone");
    }

    #[test]
    fn control_characters_are_escaped_but_lines_kept() {
        assert_eq!(clean("plain\ttext\nline two"), "plain\ttext\nline two");
        assert_eq!(
            clean("\u{1b}]0;pwned\u{7}\u{1b}[2Jx\r"),
            "\\u001b]0;pwned\\u0007\\u001b[2Jx\\u000d"
        );
        assert_eq!(clean("\u{9b}31m"), "\\u009b31m");
        // JSON output stays JSON: DEL and C1 characters are legal in strings.
        let json = serde_json::json!({ "s": "a\u{7f}b\u{85}c" }).to_string();
        let back: serde_json::Value = serde_json::from_str(&clean(&json)).unwrap();
        assert_eq!(back["s"], "a\u{7f}b\u{85}c");
    }
}
