//! Text that reaches a log line from outside (a client's query, an upstream's answer, an error
//! that quotes either).
//!
//! String fields are escaped by both log formats, but a `%`-formatted value is written as it is
//! in text logs, so `task=t1%0d%0aX-Evil:%201` could forge a line. [`Escaped`] writes control
//! characters as escapes (`\r`, `\n`, `\u{1b}`), whatever the value's `Display` produces.

use std::fmt::{self, Display, Write};

/// Displays the inner value with control characters escaped.
pub(crate) struct Escaped<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Display + ?Sized> Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let text = "task t1\r\nX-Evil: 1\u{1b}[31m\u{85}é";
        let shown = Escaped(text).to_string();
        assert_eq!(shown, "task t1\\r\\nX-Evil: 1\\u{1b}[31m\\u{85}é");
        assert!(!shown.contains(['\r', '\n']));
    }
}
