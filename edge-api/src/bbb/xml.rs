//! BBB's answers: `<response>` documents with a `returncode`, written by hand (a handful of
//! flat elements; an XML library would cost the component more than the API does).

use std::fmt::{Display, Write as _};

use crate::exchange::EdgeResponse;

/// A `<response>` being written.
pub struct Xml(String);

impl Xml {
    /// A `SUCCESS` response.
    pub fn success() -> Xml {
        Xml::with_code("SUCCESS")
    }

    /// Elements to [`Xml::append`] to a response later.
    pub fn fragment() -> Xml {
        Xml(String::new())
    }

    /// Adds the elements of `fragment`.
    pub fn append(mut self, fragment: Xml) -> Xml {
        self.0.push_str(&fragment.0);
        self
    }

    fn with_code(code: &str) -> Xml {
        Xml(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response><returncode>{code}</returncode>"
        ))
    }

    /// Adds `<name>value</name>`, the value escaped. `name` must be an XML name (this module's
    /// callers pass literals, or meta names [`is_element_name`] allowed).
    pub fn field(mut self, name: &str, value: impl Display) -> Xml {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        let mut text = String::new();
        let _ = write!(text, "{value}");
        escape_into(&mut self.0, &text);
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    /// Opens element `name`.
    pub fn open(mut self, name: &str) -> Xml {
        let _ = write!(self.0, "<{name}>");
        self
    }

    /// Closes element `name`.
    pub fn close(mut self, name: &str) -> Xml {
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// `<metadata>` with one element per entry of `meta` (a JSON object of texts) whose name is
    /// an XML name.
    pub fn metadata<'a>(
        self,
        meta: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
    ) -> Xml {
        let mut xml = self.open("metadata");
        for (name, value) in meta {
            if is_element_name(name) {
                xml = xml.field(name, value.as_str().unwrap_or_default());
            }
        }
        xml.close("metadata")
    }

    /// The answer: HTTP 200, `text/xml`.
    pub fn finish(mut self) -> EdgeResponse {
        self.0.push_str("</response>");
        EdgeResponse {
            status: 200,
            headers: vec![("content-type", "text/xml; charset=utf-8".into())],
            body: self.0.into_bytes(),
        }
    }
}

/// A `FAILED` answer with BBB's `messageKey` and `message`.
pub fn failed(message_key: &str, message: &str) -> EdgeResponse {
    Xml::with_code("FAILED")
        .field("messageKey", message_key)
        .field("message", message)
        .finish()
}

/// Whether `name` can be an element's name here: a letter or `_` first, then letters, digits,
/// `-`, `_` and `.` (BBB's meta names, as integrations use them: `bbb-origin`,
/// `bbb-recording-name`), at most 64 characters, and not starting with `xml`.
pub fn is_element_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.len() <= 64
        && !name.to_ascii_lowercase().starts_with("xml")
}

/// Appends `text` escaped for element content; characters XML 1.0 cannot carry are left out.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_names_checked() {
        let response = Xml::success()
            .field("message", "<b>&\"Tom's\"\u{1}</b>")
            .field("n", 3)
            .finish();
        let body = String::from_utf8(response.body).unwrap();
        assert!(body.ends_with(
            "<response><returncode>SUCCESS</returncode><message>&lt;b&gt;&amp;&quot;Tom&apos;s&quot;&lt;/b&gt;</message><n>3</n></response>"
        ), "{body}");
        for good in ["bbb-origin", "a.b_c", "_x"] {
            assert!(is_element_name(good), "{good}");
        }
        for bad in ["", "1a", "a b", "a<b", "xmlns", "a:b", &"a".repeat(65)] {
            assert!(!is_element_name(bad), "{bad}");
        }
        let failed = String::from_utf8(failed("k", "m").body).unwrap();
        assert!(failed.contains(
            "<returncode>FAILED</returncode><messageKey>k</messageKey><message>m</message>"
        ));
    }
}
