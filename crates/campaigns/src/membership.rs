//! Segment membership by hash. An audience names segments by id, and a user is in about a
//! dozen: comparing the ids as strings costs a dozen string comparisons per named segment
//! per campaign, on strings scattered across the heap. Instead a compiled campaign keeps
//! the hashes of its audience's segment ids ([`AudienceKeys`]), the user's segments are
//! hashed once per cause ([`UserSegments`]), and membership is a probe in a small table of
//! integers; a hash that matches is confirmed by comparing the ids, so a collision never
//! counts a user in. The index names the one audience segment behind each hash
//! ([`SegmentNames`]): a user's segment confirmed against it is a member of every audience
//! segment with that hash, without reading the campaign's ids.

use std::collections::HashMap;
use std::hash::BuildHasher;

use herald_proto::trigger::v1::Audience;

/// The hash of a segment id (in memory only: never stored).
fn hash(segment_id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x0073_6567_6d65_6e74).hash_one(segment_id)
}

/// The hashes of an audience's included and excluded segment ids, in their order.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudienceKeys {
    pub include: Vec<u64>,
    pub exclude: Vec<u64>,
}

impl AudienceKeys {
    pub fn new(audience: &Audience) -> AudienceKeys {
        AudienceKeys {
            include: audience
                .include_segment_ids
                .iter()
                .map(|id| hash(id))
                .collect(),
            exclude: audience
                .exclude_segment_ids
                .iter()
                .map(|id| hash(id))
                .collect(),
        }
    }
}

/// The segment ids the audiences of an index's campaigns name, by hash: `None` for a hash
/// two of them share (never seen with 64 bits), which then is confirmed per campaign.
#[derive(Debug, Default)]
pub(crate) struct SegmentNames {
    by_hash: HashMap<u64, Option<String>, foldhash::fast::RandomState>,
}

impl SegmentNames {
    /// Names the segments of `audience`.
    pub fn add(&mut self, audience: &Audience) {
        for id in audience
            .include_segment_ids
            .iter()
            .chain(&audience.exclude_segment_ids)
        {
            self.by_hash
                .entry(hash(id))
                .and_modify(|named| {
                    if named.as_deref() != Some(id.as_str()) {
                        *named = None;
                    }
                })
                .or_insert_with(|| Some(id.clone()));
        }
    }
}

/// One of the user's segments: its hash, where its id is, and whether it is the only
/// audience segment with that hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    key: u64,
    at: u32,
    confirmed: bool,
}

/// The segments a user is in, as segmentation computed them for one cause, hashed.
pub(crate) struct UserSegments<'a> {
    ids: &'a [String],
    /// An open-addressing table by hash (linear probing, at most half full): a user is in
    /// a dozen segments, so finding one is a probe or two, with no sorting to build it.
    slots: Vec<Option<Member>>,
}

impl<'a> UserSegments<'a> {
    /// The user's segments `ids`; with `names`, those no audience names are left out and
    /// the others confirmed once, here.
    pub fn new(ids: &'a [String], names: Option<&SegmentNames>) -> UserSegments<'a> {
        let mut slots = vec![None; (2 * ids.len()).next_power_of_two().max(2)];
        let mask = slots.len() - 1;
        let members = ids.iter().enumerate().filter_map(|(at, id)| {
            let key = hash(id);
            let confirmed = match names.map(|n| n.by_hash.get(&key)) {
                None => false,
                // No audience names it.
                Some(None) => return None,
                Some(Some(named)) => named.as_deref() == Some(id.as_str()),
            };
            Some(Member {
                key,
                at: at as u32,
                confirmed,
            })
        });
        for member in members {
            let mut slot = member.key as usize & mask;
            while slots[slot].is_some() {
                slot = (slot + 1) & mask;
            }
            slots[slot] = Some(member);
        }
        UserSegments { ids, slots }
    }

    /// Whether the user is in the segment whose hash is `key` and whose id `id` gives;
    /// the id is read only when the hash alone does not settle it.
    pub fn contains<'i>(&self, key: u64, id: impl Fn() -> &'i str) -> bool {
        let mask = self.slots.len() - 1;
        let mut slot = key as usize & mask;
        // The members with this hash are in the probe run from its slot to an empty one.
        while let Some(member) = &self.slots[slot] {
            if member.key == key && (member.confirmed || self.ids[member.at as usize] == id()) {
                return true;
            }
            slot = (slot + 1) & mask;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_by_id() {
        let ids: Vec<String> = (0..50).map(|i| format!("seg_{i:032x}")).collect();
        let mut names = SegmentNames::default();
        names.add(&Audience {
            include_segment_ids: ids[..25].to_vec(),
            exclude_segment_ids: ids[20..].to_vec(),
            ..Default::default()
        });
        for names in [None, Some(&names)] {
            let user = UserSegments::new(&ids[10..30], names);
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(
                    user.contains(hash(id), || id),
                    (10..30).contains(&i),
                    "{id}"
                );
            }
            assert!(!UserSegments::new(&[], names).contains(hash(&ids[0]), || &ids[0]));
        }
        // A hash that matches but an id that does not is not membership.
        let user = UserSegments::new(&ids[10..30], None);
        assert!(!user.contains(hash(&ids[12]), || "seg_other"));
    }

    #[test]
    fn a_hash_two_audience_segments_share_is_confirmed_by_id() {
        // Two ids given one hash, as a collision would.
        let (a, b) = ("seg_a".to_owned(), "seg_b".to_owned());
        let mut names = SegmentNames::default();
        names.by_hash.insert(hash(&a), Some(a.clone()));
        names.add(&Audience {
            include_segment_ids: vec![b.clone()],
            ..Default::default()
        });
        names.by_hash.insert(hash(&b), None);
        let user_b = [b.clone()];
        let user = UserSegments::new(&user_b, Some(&names));
        assert!(user.contains(hash(&b), || &b));
        // seg_a's hash in place of seg_b's, confirmed on the id: not a member.
        let mut slots = vec![None; 2];
        slots[hash(&a) as usize & 1] = Some(Member {
            key: hash(&a),
            at: 0,
            confirmed: false,
        });
        let user = UserSegments {
            ids: &user_b,
            slots,
        };
        assert!(!user.contains(hash(&a), || &a));
        // Adding an id again keeps it confirmed; another id with its hash makes the hash
        // shared.
        let mut names = SegmentNames::default();
        let audience = |id: &str| Audience {
            include_segment_ids: vec![id.to_owned()],
            ..Default::default()
        };
        names.add(&audience(&a));
        names.add(&audience(&a));
        assert_eq!(names.by_hash.get(&hash(&a)), Some(&Some(a.clone())));
        names.by_hash.insert(hash(&b), Some(a.clone()));
        names.add(&audience(&b));
        assert_eq!(names.by_hash.get(&hash(&b)), Some(&None));
        // An id no audience names is left out: no campaign asks for it.
        let other = ["seg_other".to_owned()];
        let other = UserSegments::new(&other, Some(&names));
        assert!(other.slots.iter().all(Option::is_none));
    }
}
