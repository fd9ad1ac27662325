//! What is wrong with a request, field by field: [`FieldViolation`]s, collected by
//! [`Violations`] with the length check every service needs.

/// One wrong field: its path (e.g. `events[3].name`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation under a parent path, e.g. `name` → `events[3].name`.
    pub fn nested(self, parent: &str) -> Self {
        FieldViolation {
            field: format!("{parent}.{}", self.field),
            ..self
        }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// `violations` in one line, `field: description` joined with `; `.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The allowed length of a text field, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Len {
    min: usize,
    max: usize,
}

impl Len {
    /// Non-empty, at most `max` characters.
    pub const fn required(max: usize) -> Len {
        Len { min: 1, max }
    }

    /// Possibly empty, at most `max` characters.
    pub const fn optional(max: usize) -> Len {
        Len { min: 0, max }
    }

    /// `min..=max` characters.
    pub const fn between(min: usize, max: usize) -> Len {
        Len { min, max }
    }

    /// What is wrong with `value`, if anything.
    pub fn check(self, value: &str) -> Option<String> {
        let len = value.chars().count();
        if len == 0 && self.min > 0 {
            Some("is required".to_owned())
        } else if len > self.max {
            Some(format!(
                "must be at most {} characters, got {len}",
                self.max
            ))
        } else if len < self.min {
            Some(format!(
                "must be {}..={} characters, got {len}",
                self.min, self.max
            ))
        } else {
            None
        }
    }
}

/// The violations found in one request, in the order the fields were checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// None yet.
    pub fn new() -> Self {
        Violations::default()
    }

    /// Records that `field` is wrong.
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Checks the length of the text `value` of `field`.
    pub fn text(&mut self, field: impl Into<String>, value: &str, len: Len) {
        if let Some(description) = len.check(value) {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    /// Checks the keys every event carries, under `field`: its `message_id`, `user_id`
    /// and `name`.
    pub fn event_keys(&mut self, field: &str, message_id: &str, user_id: &str, name: &str) {
        use crate::limits;
        self.text(
            format!("{field}.message_id"),
            message_id,
            Len::required(limits::MESSAGE_ID),
        );
        self.text(
            format!("{field}.user_id"),
            user_id,
            Len::required(limits::USER_ID),
        );
        self.text(
            format!("{field}.name"),
            name,
            Len::required(limits::EVENT_NAME),
        );
    }

    /// Checks an internal batch request: its `workspace_id`, and at most
    /// [`limits::MAX_BATCH`](crate::limits::MAX_BATCH) entries in `field`.
    pub fn batch(&mut self, workspace_id: &str, field: &str, len: usize) {
        use crate::limits;
        self.text(
            "workspace_id",
            workspace_id,
            Len::required(limits::WORKSPACE_ID),
        );
        if len > limits::MAX_BATCH {
            self.push(
                field,
                format!("must hold at most {} items, got {len}", limits::MAX_BATCH),
            );
        }
    }

    /// Adds violations found elsewhere.
    pub fn extend(&mut self, more: impl IntoIterator<Item = FieldViolation>) {
        self.0.extend(more);
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations.
    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }

    /// `Ok` when nothing is wrong, else every violation.
    pub fn finish(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

impl IntoIterator for Violations {
    type Item = FieldViolation;
    type IntoIter = std::vec::IntoIter<FieldViolation>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<Violations> for Vec<FieldViolation> {
    fn from(v: Violations) -> Self {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters() {
        assert_eq!(Len::required(3).check("äöü"), None);
        assert_eq!(Len::required(3).check(""), Some("is required".into()));
        assert_eq!(Len::optional(3).check(""), None);
        assert_eq!(
            Len::optional(2).check("abc"),
            Some("must be at most 2 characters, got 3".into())
        );
        assert_eq!(
            Len::between(2, 4).check("a"),
            Some("must be 2..=4 characters, got 1".into())
        );
    }

    #[test]
    fn violations_keep_their_order() {
        let mut v = Violations::new();
        v.text("a", "", Len::required(5));
        v.push("b", "is wrong");
        v.text("c", "fine", Len::required(5));
        let fields: Vec<String> = v.into_vec().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["a", "b"]);
    }
}
