//! References between segments (`in_segment`): which segments a rule uses, and whether
//! saving a rule would close a cycle.

use std::collections::{HashMap, VecDeque};

use herald_core::FieldViolation;
use herald_proto::segmentation::v1::{Rule, rule::Kind};

/// The segments `rule` refers to with `in_segment`, each once, in the order written.
pub fn segment_references(rule: &Rule) -> Vec<&str> {
    let mut found = Vec::new();
    visit(rule, "rule", &mut |id, _| {
        if !found.contains(&id) {
            found.push(id);
        }
    });
    found
}

/// Checks the references of `rule`, the rule of segment `segment_id`, against the
/// workspace's other segments, which `lookup` returns by id: every referenced segment
/// must exist, and no chain of references may lead back to `segment_id` (directly, or
/// through other segments). Each problem is reported at the reference that starts it,
/// e.g. `rule.all.rules[1].in_segment.segment_id`, naming the chain
/// (`seg_a → seg_b → seg_a`).
///
/// `lookup` should return the stored rules of the other segments (not the one being
/// saved). A segment being created has no id anyone refers to yet, so it cannot close
/// a cycle; pass its new id anyway to have unknown references reported.
pub fn check_references<'r>(
    segment_id: &str,
    rule: &Rule,
    lookup: impl Fn(&str) -> Option<&'r Rule>,
) -> Result<(), Vec<FieldViolation>> {
    let mut references = Vec::new();
    visit(rule, "rule", &mut |id, field| references.push((id, field)));
    let mut violations = Vec::new();
    for (id, field) in references {
        let field = format!("{field}.in_segment.segment_id");
        if id == segment_id {
            violations.push(FieldViolation::new(
                field,
                format!("a segment cannot refer to itself: {id} → {id}"),
            ));
        } else if lookup(id).is_none() {
            violations.push(FieldViolation::new(
                field,
                format!("segment `{id}` does not exist"),
            ));
        } else if let Some(chain) = path_back(id, segment_id, &lookup) {
            violations.push(FieldViolation::new(
                field,
                format!(
                    "the reference to `{id}` makes a cycle: {segment_id} → {}",
                    chain.join(" → ")
                ),
            ));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// The shortest chain of references from `start` to `target` (both included), if any.
fn path_back<'r>(
    start: &str,
    target: &str,
    lookup: &impl Fn(&str) -> Option<&'r Rule>,
) -> Option<Vec<String>> {
    // Breadth first, remembering where each segment was reached from.
    let mut from: HashMap<String, Option<String>> = HashMap::from([(start.to_owned(), None)]);
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(current) = queue.pop_front() {
        let Some(rule) = lookup(&current) else {
            continue;
        };
        for next in segment_references(rule) {
            if next == target {
                let mut chain = vec![target.to_owned(), current.clone()];
                let mut at = from.get(&current).cloned().flatten();
                while let Some(previous) = at {
                    at = from.get(&previous).cloned().flatten();
                    chain.push(previous);
                }
                chain.reverse();
                return Some(chain);
            }
            if !from.contains_key(next) {
                from.insert(next.to_owned(), Some(current.clone()));
                queue.push_back(next.to_owned());
            }
        }
    }
    None
}

/// Calls `f` with each `in_segment` id of `rule` and the field path of its node.
fn visit<'a>(rule: &'a Rule, field: &str, f: &mut impl FnMut(&'a str, String)) {
    match &rule.kind {
        Some(Kind::All(g)) => {
            for (i, child) in g.rules.iter().enumerate() {
                visit(child, &format!("{field}.all.rules[{i}]"), f);
            }
        }
        Some(Kind::Any(g)) => {
            for (i, child) in g.rules.iter().enumerate() {
                visit(child, &format!("{field}.any.rules[{i}]"), f);
            }
        }
        Some(Kind::Not(child)) => visit(child, &format!("{field}.not"), f),
        Some(Kind::InSegment(c)) => f(&c.segment_id, field.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn segments(list: &[(&str, &str)]) -> HashMap<String, Rule> {
        list.iter()
            .map(|(id, text)| ((*id).to_owned(), parse(text).expect("a valid rule")))
            .collect()
    }

    #[test]
    fn references_are_listed_once_in_order() {
        let rule =
            parse(r#"in_segment("b") and (in_segment("a") or not in_segment("b"))"#).unwrap();
        assert_eq!(segment_references(&rule), ["b", "a"]);
        assert!(segment_references(&parse("plan == 1").unwrap()).is_empty());
    }

    #[test]
    fn a_chain_back_to_the_segment_is_a_cycle() {
        let others = segments(&[
            ("seg_b", r#"in_segment("seg_c") or plan == "pro""#),
            ("seg_c", r#"in_segment("seg_d") and in_segment("seg_a")"#),
            ("seg_d", "plan == 1"),
        ]);
        let rule = parse(r#"country == "FR" and in_segment("seg_b")"#).unwrap();
        let error = check_references("seg_a", &rule, |id| others.get(id)).unwrap_err();
        assert_eq!(error.len(), 1);
        assert_eq!(error[0].field, "rule.all.rules[1].in_segment.segment_id");
        assert_eq!(
            error[0].description,
            "the reference to `seg_b` makes a cycle: seg_a → seg_b → seg_c → seg_a"
        );
        // The same rule for another segment closes no cycle.
        assert!(check_references("seg_x", &rule, |id| others.get(id)).is_ok());
    }

    #[test]
    fn self_and_unknown_references_are_refused() {
        let others = segments(&[("seg_b", "plan == 1")]);
        let rule =
            parse(r#"in_segment("seg_a") or in_segment("seg_b") or in_segment("seg_z")"#).unwrap();
        let error = check_references("seg_a", &rule, |id| others.get(id)).unwrap_err();
        let found: Vec<(&str, &str)> = error
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "rule.any.rules[0].in_segment.segment_id",
                    "a segment cannot refer to itself: seg_a → seg_a"
                ),
                (
                    "rule.any.rules[2].in_segment.segment_id",
                    "segment `seg_z` does not exist"
                ),
            ]
        );
    }

    #[test]
    fn cycles_elsewhere_do_not_loop_forever() {
        // seg_b and seg_c refer to each other (stored before cycles were checked).
        let others = segments(&[
            ("seg_b", r#"in_segment("seg_c")"#),
            ("seg_c", r#"in_segment("seg_b")"#),
        ]);
        let rule = parse(r#"in_segment("seg_b")"#).unwrap();
        assert!(check_references("seg_a", &rule, |id| others.get(id)).is_ok());
    }
}
