//! Segment membership by hash. An audience names segments by id, and a user is in about a
//! dozen: comparing the ids as strings costs a dozen string comparisons per named segment
//! per campaign, on strings scattered across the heap. Instead a compiled campaign keeps
//! the hashes of its audience's segment ids ([`AudienceKeys`]), the user's segments are
//! hashed once per cause ([`UserSegments`]), and membership is a probe in a small table of
//! integers; a hash that matches is confirmed by comparing the ids, so a collision never
//! counts a user in. The index names the one audience segment behind each hash
//! ([`SegmentNames`]): a user's segment confirmed against it is a member of every audience
//! segment with that hash, without reading the campaign's ids.

use std::cell::Cell;
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

/// What the index's table of names says of one of the user's segments, once asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// Not asked yet.
    Unknown,
    /// It is the only audience segment with its hash: a member of each.
    Only,
    /// The only audience segment with its hash is another one: a member of none.
    Other,
    /// Compared with each audience segment's own id (no table, or several ids share the
    /// hash).
    ById,
}

/// One of the user's segments: its hash, where its id is, and what the table says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    key: u64,
    at: u32,
    named: Cell<Named>,
}

/// The segments a user is in, as segmentation computed them for one cause, hashed.
pub(crate) struct UserSegments<'a, 'n> {
    ids: &'a [String],
    /// The segment names of the index the audiences come from, if they all do.
    names: Option<&'n SegmentNames>,
    /// An open-addressing table by hash (linear probing, at most half full): a user is in
    /// a dozen segments, so finding one is a probe or two, with no sorting to build it.
    slots: Vec<Option<Member>>,
}

impl<'a, 'n> UserSegments<'a, 'n> {
    /// The user's segments `ids`, each confirmed against `names` (if given) the first
    /// time an audience segment has its hash: most of a user's segments are named by no
    /// audience of the cause.
    pub fn new(ids: &'a [String], names: Option<&'n SegmentNames>) -> UserSegments<'a, 'n> {
        let mut slots = vec![None; (2 * ids.len()).next_power_of_two().max(2)];
        let mask = slots.len() - 1;
        for (at, id) in ids.iter().enumerate() {
            let key = hash(id);
            let mut slot = key as usize & mask;
            while slots[slot].is_some() {
                slot = (slot + 1) & mask;
            }
            slots[slot] = Some(Member {
                key,
                at: at as u32,
                named: Cell::new(Named::Unknown),
            });
        }
        UserSegments { ids, names, slots }
    }

    /// Whether the user is in the segment whose hash is `key` and whose id `id` gives;
    /// the id is read only when the hash and the table of names do not settle it.
    pub fn contains<'i>(&self, key: u64, id: impl Fn() -> &'i str) -> bool {
        let mask = self.slots.len() - 1;
        let mut slot = key as usize & mask;
        // The members with this hash are in the probe run from its slot to an empty one.
        while let Some(member) = &self.slots[slot] {
            if member.key == key {
                let own = &self.ids[member.at as usize];
                let named = match member.named.get() {
                    Named::Unknown => {
                        let named = match self.names.map(|n| n.by_hash.get(&key)) {
                            Some(Some(Some(only))) if only == own => Named::Only,
                            Some(Some(Some(_)) | None) => Named::Other,
                            Some(Some(None)) | None => Named::ById,
                        };
                        member.named.set(named);
                        named
                    }
                    named => named,
                };
                match named {
                    Named::Only => return true,
                    Named::ById if *own == id() => return true,
                    _ => {}
                }
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
        for names in [None, Some(&names)] {
            let mut slots = vec![None; 2];
            slots[hash(&a) as usize & 1] = Some(Member {
                key: hash(&a),
                at: 0,
                named: Cell::new(Named::Unknown),
            });
            let user = UserSegments {
                ids: &user_b,
                names,
                slots,
            };
            assert!(!user.contains(hash(&a), || &a));
        }
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
        // The table settles an id it names alone, or does not name, without the campaign's.
        let ids = [a.clone(), "seg_other".to_owned()];
        let user = UserSegments::new(&ids, Some(&names));
        let unread = || -> &str { panic!("the table settles it") };
        assert!(user.contains(hash(&a), unread));
        assert!(!user.contains(hash(&ids[1]), unread));
    }
}
