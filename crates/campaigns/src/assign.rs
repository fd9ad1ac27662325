//! Deterministic A/B assignment: a stable hash of (campaign id, user id) over the
//! variants' weights and the control weight.

use sha2::{Digest, Sha256};

/// Where a user falls in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// The variant at this index.
    Variant(usize),
    /// The control holdout: no message.
    Control,
}

/// The user's bucket in `[0, total)`; the same for the same campaign and user, on every
/// replica and across restarts (unlike std's randomly seeded hasher).
fn bucket(campaign_id: &str, user_id: &str, total: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(campaign_id.as_bytes())
        .chain_update(b":")
        .chain_update(user_id.as_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head) % total
}

/// The arm with all the weight, if one has it (most campaigns: one variant, no control):
/// everyone is assigned it, with no need to hash.
pub fn sole_arm(weights: &[u32], control_weight: u32) -> Option<Assignment> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum::<u64>() + u64::from(control_weight);
    if total == 0 {
        return None;
    }
    if u64::from(control_weight) == total {
        return Some(Assignment::Control);
    }
    weights
        .iter()
        .position(|w| u64::from(*w) == total)
        .map(Assignment::Variant)
}

/// Assigns `user_id` to one of the variants with `weights`, or to control; `None` when
/// every weight is 0.
pub fn assign(
    campaign_id: &str,
    user_id: &str,
    weights: &[u32],
    control_weight: u32,
) -> Option<Assignment> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum::<u64>() + u64::from(control_weight);
    if total == 0 {
        return None;
    }
    let mut point = bucket(campaign_id, user_id, total);
    for (index, weight) in weights.iter().enumerate() {
        let weight = u64::from(*weight);
        if point < weight {
            return Some(Assignment::Variant(index));
        }
        point -= weight;
    }
    Some(Assignment::Control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_deterministic() {
        for user in ["u1", "u2", "someone@example.com"] {
            let first = assign("cmp_1", user, &[1, 1, 1], 1);
            for _ in 0..5 {
                assert_eq!(assign("cmp_1", user, &[1, 1, 1], 1), first);
            }
        }
    }

    #[test]
    fn equal_weights_split_evenly() {
        let first = (0..10_000)
            .filter(|i| {
                assign("cmp_split", &format!("user-{i}"), &[1, 1], 0)
                    == Some(Assignment::Variant(0))
            })
            .count();
        assert!(
            (4_500..=5_500).contains(&first),
            "variant 0 got {first} of 10000"
        );
    }

    #[test]
    fn control_weight_holds_out_its_share() {
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            match assign("cmp_control", &format!("user-{i}"), &[45, 45], 10) {
                Some(Assignment::Variant(v)) => counts[v] += 1,
                Some(Assignment::Control) => counts[2] += 1,
                None => unreachable!("weights are positive"),
            }
        }
        assert!(
            (800..=1_200).contains(&counts[2]),
            "control got {}",
            counts[2]
        );
        assert!(
            (4_000..=5_000).contains(&counts[0]),
            "variant 0 got {}",
            counts[0]
        );
    }

    #[test]
    fn zero_weights_get_nobody() {
        for i in 0..1_000 {
            assert_eq!(
                assign("c", &format!("u{i}"), &[0, 3], 0),
                Some(Assignment::Variant(1))
            );
        }
        assert_eq!(assign("c", "u", &[0, 0], 0), None);
        assert_eq!(assign("c", "u", &[], 5), Some(Assignment::Control));
    }

    #[test]
    fn different_campaigns_shuffle_users() {
        let same = (0..1_000)
            .filter(|i| {
                let user = format!("user-{i}");
                assign("cmp_a", &user, &[1, 1], 0) == assign("cmp_b", &user, &[1, 1], 0)
            })
            .count();
        assert!(
            (350..=650).contains(&same),
            "{same} of 1000 users landed alike"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn a_user_lands_in_a_variant_with_weight_or_in_control(
                weights in prop::collection::vec(0u32..5, 0..6),
                control in 0u32..5,
                user in "[a-z0-9]{1,12}",
            ) {
                match assign("cmp_p", &user, &weights, control) {
                    None => prop_assert_eq!(weights.iter().sum::<u32>() + control, 0),
                    Some(Assignment::Variant(i)) => prop_assert!(weights[i] > 0),
                    Some(Assignment::Control) => prop_assert!(control > 0),
                }
                prop_assert_eq!(assign("cmp_p", &user, &weights, control), assign("cmp_p", &user, &weights, control));
            }
        }
    }

    /// The arm `sole_arm` names is the one the hash assigns, for every user: deciding
    /// may skip the hash.
    #[test]
    fn the_sole_arm_is_what_the_hash_assigns() {
        for (weights, control) in [
            (&[5][..], 0),
            (&[0, 3][..], 0),
            (&[0, 0, 7][..], 0),
            (&[][..], 4),
            (&[0, 0][..], 9),
        ] {
            let arm = sole_arm(weights, control).expect("one arm has all the weight");
            for i in 0..200 {
                assert_eq!(assign("c", &format!("u{i}"), weights, control), Some(arm));
            }
        }
        assert_eq!(sole_arm(&[1, 1], 0), None);
        assert_eq!(sole_arm(&[1], 1), None);
        assert_eq!(sole_arm(&[0], 0), None);
    }
}
