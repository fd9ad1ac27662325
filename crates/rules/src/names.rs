//! The words of the text form and the tree values they stand for, shared by the lexer,
//! the parser and the formatter so that both directions use one table.

use herald_conditions::Operator;
use herald_proto::common::v1::ComparisonOperator;
use herald_proto::segmentation::v1::{CountComparison, EngagementKind, TimeDirection, TimeUnit};

/// Words that cannot start a path, because they would read as the rule's own keywords.
pub(crate) const RESERVED: [&str; 3] = ["and", "or", "not"];

/// The text of an operator: a symbol, a word, or the function name of `exists`.
pub(crate) fn operator_text(op: Operator) -> &'static str {
    match op {
        Operator::Eq => "==",
        Operator::Ne => "!=",
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Lt => "<",
        Operator::Lte => "<=",
        Operator::Contains => "contains",
        Operator::NotContains => "not_contains",
        Operator::StartsWith => "starts_with",
        Operator::EndsWith => "ends_with",
        Operator::In => "in",
        Operator::NotIn => "not_in",
        Operator::Exists => "exists",
        Operator::NotExists => "not_exists",
    }
}

/// The operators written as words between a path and a value.
pub(crate) fn word_operator(word: &str) -> Option<Operator> {
    Some(match word {
        "contains" => Operator::Contains,
        "not_contains" => Operator::NotContains,
        "starts_with" => Operator::StartsWith,
        "ends_with" => Operator::EndsWith,
        "in" => Operator::In,
        "not_in" => Operator::NotIn,
        _ => return None,
    })
}

/// The wire value of an operator.
pub(crate) fn operator_proto(op: Operator) -> i32 {
    use ComparisonOperator as P;
    (match op {
        Operator::Eq => P::Eq,
        Operator::Ne => P::Ne,
        Operator::Gt => P::Gt,
        Operator::Gte => P::Gte,
        Operator::Lt => P::Lt,
        Operator::Lte => P::Lte,
        Operator::Contains => P::Contains,
        Operator::NotContains => P::NotContains,
        Operator::StartsWith => P::StartsWith,
        Operator::EndsWith => P::EndsWith,
        Operator::In => P::In,
        Operator::NotIn => P::NotIn,
        Operator::Exists => P::Exists,
        Operator::NotExists => P::NotExists,
    }) as i32
}

/// Whether `op` is one of `==`, `!=`, `>`, `>=`, `<`, `<=`.
pub(crate) fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq | Operator::Ne | Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
    )
}

const TIME_UNITS: [(&str, TimeUnit); 4] = [
    ("minutes", TimeUnit::Minutes),
    ("hours", TimeUnit::Hours),
    ("days", TimeUnit::Days),
    ("weeks", TimeUnit::Weeks),
];

/// The unit and direction of a time function such as `days_since`.
pub(crate) fn time_function(name: &str) -> Option<(TimeUnit, TimeDirection)> {
    let (unit, direction) = name.split_once('_')?;
    let unit = TIME_UNITS.iter().find(|(n, _)| *n == unit)?.1;
    let direction = match direction {
        "since" => TimeDirection::Since,
        "until" => TimeDirection::Until,
        _ => return None,
    };
    Some((unit, direction))
}

/// The name of the time function of `unit` and `direction` (unset meaning since).
pub(crate) fn time_function_name(unit: i32, direction: i32) -> Option<String> {
    let unit = TIME_UNITS.iter().find(|(_, u)| *u as i32 == unit)?.0;
    let direction = match TimeDirection::try_from(direction).ok()? {
        TimeDirection::Unspecified | TimeDirection::Since => "since",
        TimeDirection::Until => "until",
    };
    Some(format!("{unit}_{direction}"))
}

const ENGAGEMENTS: [(&str, EngagementKind); 5] = [
    ("received", EngagementKind::Received),
    ("displayed", EngagementKind::Displayed),
    ("clicked", EngagementKind::Clicked),
    ("dismissed", EngagementKind::Dismissed),
    ("converted", EngagementKind::Converted),
];

/// The engagement kind of a function such as `clicked`.
pub(crate) fn engagement(name: &str) -> Option<EngagementKind> {
    ENGAGEMENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
}

/// The function name of an engagement kind.
pub(crate) fn engagement_name(kind: i32) -> Option<&'static str> {
    ENGAGEMENTS
        .iter()
        .find(|(_, k)| *k as i32 == kind)
        .map(|(n, _)| *n)
}

/// The count argument names and what they mean.
pub(crate) const COUNTS: [(&str, CountComparison); 3] = [
    ("at_least", CountComparison::AtLeast),
    ("at_most", CountComparison::AtMost),
    ("exactly", CountComparison::Exactly),
];

/// Duration units, largest first, with their length in seconds. The formatter writes
/// the largest unit but weeks that divides a duration (`2w` is written `14d`).
pub(crate) const DURATION_UNITS: [(&str, i64); 5] = [
    ("w", 604_800),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

/// Every function name, for suggestions.
pub(crate) const FUNCTIONS: [&str; 19] = [
    "exists",
    "not_exists",
    "performed",
    "in_segment",
    "received",
    "displayed",
    "clicked",
    "dismissed",
    "converted",
    "all",
    "any",
    "minutes_since",
    "minutes_until",
    "hours_since",
    "hours_until",
    "days_since",
    "days_until",
    "weeks_since",
    "weeks_until",
];

/// Every argument name, for suggestions.
pub(crate) const ARGUMENTS: [&str; 6] =
    ["where", "within", "since", "at_least", "at_most", "exactly"];

/// The candidate closest to `word` when it is a likely typo (at most two edits away).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2 && *d < word.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_functions_go_both_ways() {
        for name in FUNCTIONS
            .iter()
            .filter(|f| f.contains("_s") || f.contains("_u"))
        {
            if let Some((unit, direction)) = time_function(name) {
                assert_eq!(
                    time_function_name(unit as i32, direction as i32).as_deref(),
                    Some(*name)
                );
            }
        }
        assert_eq!(time_function("dayz_since"), None);
        assert_eq!(time_function("days_ago"), None);
        assert_eq!(
            time_function_name(TimeUnit::Days as i32, 0).as_deref(),
            Some("days_since")
        );
        assert_eq!(time_function_name(0, 1), None);
    }

    #[test]
    fn every_operator_has_its_own_text() {
        let texts: std::collections::BTreeSet<&str> =
            Operator::ALL.iter().map(|op| operator_text(*op)).collect();
        assert_eq!(texts.len(), Operator::ALL.len());
        for op in Operator::ALL {
            assert_eq!(Operator::from_proto(operator_proto(op)), Some(op));
        }
    }

    #[test]
    fn typos_find_their_word() {
        assert_eq!(closest("dayz_since", &FUNCTIONS), Some("days_since"));
        assert_eq!(closest("whithin", &ARGUMENTS), Some("within"));
        assert_eq!(closest("frobnicate", &FUNCTIONS), None);
        assert_eq!(closest("a", &["b"]), None);
    }
}
