//! `{{ name }}` templates, as Spin's `spin-expressions` parses them.
//!
//! A template is a sequence of literal text and expressions. An expression is
//! everything between `{{` and the next `}}`, trimmed; it names an application
//! variable. An unmatched `{{` is an error. There is no escaping.

use std::fmt;

/// One piece of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Literal text, used verbatim.
    Lit(String),
    /// The name of a variable whose value is substituted.
    Expr(String),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A template could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid variable template {template:?}: unmatched '{{{{' in template")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let (expr, tail) = after_open.split_once("}}").ok_or_else(|| TemplateError {
                    template: text.to_owned(),
                })?;
                parts.push(Part::Expr(expr.trim().to_owned()));
                rest = tail;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Lit(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        Ok(Self { parts })
    }

    /// The template's parts in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when the template has no expressions.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The variable names the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(name) => Some(name.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Substitutes every expression with `lookup(name)`.
    pub fn render<E>(
        &self,
        mut lookup: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(lit) => out.push_str(lit),
                Part::Expr(name) => out.push_str(&lookup(name)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(lit) => f.write_str(lit)?,
                Part::Expr(name) => write!(f, "{{{{ {name} }}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Lit(s.into())
    }
    fn expr(s: &str) -> Part {
        Part::Expr(s.into())
    }

    #[test]
    fn parses_like_spin() {
        let cases: &[(&str, Vec<Part>)] = &[
            ("", vec![]),
            ("a", vec![lit("a")]),
            ("{{x}}", vec![expr("x")]),
            ("a-{{ expr }}-b", vec![lit("a-"), expr("expr"), lit("-b")]),
            (
                "redis://{{ host }}:{{port}}",
                vec![lit("redis://"), expr("host"), lit(":"), expr("port")],
            ),
            ("}} {", vec![lit("}} {")]),
        ];
        for (text, parts) in cases {
            assert_eq!(Template::parse(text).unwrap().parts(), &parts[..], "{text}");
        }
    }

    #[test]
    fn unmatched_open_is_an_error() {
        assert!(Template::parse("a {{ b").is_err());
        assert!(Template::parse("{{").is_err());
    }

    #[test]
    fn renders_and_reports_lookup_errors() {
        let t = Template::parse("http://{{ host }}/").unwrap();
        assert_eq!(
            t.render(|n| Ok::<_, ()>(format!("<{n}>"))).unwrap(),
            "http://<host>/"
        );
        assert_eq!(t.render(|_| Err::<String, _>("nope")), Err("nope"));
        assert!(!t.is_literal());
        assert!(Template::parse("plain").unwrap().is_literal());
        assert_eq!(t.to_string(), "http://{{ host }}/");
    }
}
